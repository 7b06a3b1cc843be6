import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'src/manager/dashboard/static/**',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Import boundaries (STYLE.md): protocol depends on nothing of ours; workers never on the manager.
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['../manager/*', '../workers/*', '../config/*', '../cli/*', '../client/*'] },
      ],
    },
  },
  {
    files: ['src/workers/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/manager/**', '**/cli/**'] }] },
  },
  {
    // The manager's front door (docs/architecture.md): the CLI reaches the manager only through its public
    // module, the http helpers and the dashboard's entry, never its rooms (registry, dispatch, queue, ...).
    files: ['src/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./manager/(?!public\\.js$|http/[^/]+\\.js$|dashboard/index\\.js$)',
              message:
                'cli/ uses the manager through manager/public.js (or manager/http/*), not its internals',
            },
          ],
        },
      ],
    },
  },
  {
    // The dashboard is a client of the manager like the CLI: its public module, the shared http helpers
    // (not the server), client/ and protocol/.
    files: ['src/manager/dashboard/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(?!public\\.js$|http/(?!server\\.js$)[^/]+\\.js$|\\.\\./(protocol|client)/)',
              message:
                'manager/dashboard/ may import ../public.js, ../http/* helpers (not the server), client/ and protocol/',
            },
          ],
        },
      ],
    },
  },
);
