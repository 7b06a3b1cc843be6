/**
 * `fleet completion bash|zsh|fish`: shell completion written from the command tree itself, so a new command or
 * option completes without anyone editing a script. Commands and options only (ids are not looked up).
 */
import type { Command } from 'commander';
import { UsageError } from './cli-errors.js';

interface Entry {
  name: string;
  description: string;
  options: { flags: string[]; description: string }[];
}

function entries(program: Command): Entry[] {
  return program.commands
    .filter((c) => c.name() !== 'help')
    .map((c) => ({
      name: c.name(),
      description: c.description(),
      options: [
        ...c.options.map((o) => ({
          flags: [o.long, o.short].filter((f): f is string => typeof f === 'string'),
          description: o.description,
        })),
        { flags: ['--help'], description: 'show help' },
      ],
    }));
}

const words = (list: string[]) => list.join(' ');

function bash(list: Entry[]): string {
  const cases = list
    .map((e) => `    ${e.name}) opts="${words(e.options.flatMap((o) => o.flags))}" ;;`)
    .join('\n');
  return `# fleet completion for bash: eval "$(fleet completion bash)" (e.g. in ~/.bashrc)
_fleet() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" opts=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${words(list.map((e) => e.name))} --help --version" -- "$cur") )
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
  else
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -F _fleet fleet
`;
}

function zsh(list: Entry[]): string {
  // zsh runs bash completion functions through bashcompinit; one generator stays the source of truth.
  return `# fleet completion for zsh: eval "$(fleet completion zsh)" (e.g. in ~/.zshrc)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bash(list).split('\n').slice(1).join('\n')}`;
}

function fishQuote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function fish(list: Entry[]): string {
  const lines = [
    '# fleet completion for fish: fleet completion fish > ~/.config/fish/completions/fleet.fish',
    'complete -c fleet -f',
  ];
  for (const e of list) {
    lines.push(`complete -c fleet -n __fish_use_subcommand -a ${e.name} -d ${fishQuote(e.description)}`);
    for (const o of e.options) {
      const flags = o.flags
        .map((f) => (f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`))
        .join(' ');
      lines.push(
        `complete -c fleet -n '__fish_seen_subcommand_from ${e.name}' ${flags} -d ${fishQuote(o.description)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(program: Command, shell: string): string {
  const list = entries(program);
  if (shell === 'bash') return bash(list);
  if (shell === 'zsh') return zsh(list);
  if (shell === 'fish') return fish(list);
  throw new UsageError(`no completion for shell "${shell}" (bash, zsh or fish)`);
}
