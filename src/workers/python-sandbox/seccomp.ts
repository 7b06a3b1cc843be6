/**
 * A classic-BPF seccomp deny-list for x86_64, handed to bwrap with `--seccomp FD`. bwrap already drops
 * capabilities and sets no_new_privs; this closes the kernel surfaces a Python sandbox never needs and
 * escapes love: nested namespaces (unshare, setns, clone with CLONE_NEW*), ptrace, mount and the new
 * mount API, keyrings, bpf, perf, userfaultfd, io_uring, module and kexec loading, reboot.
 * Denied calls fail with EPERM (clone3 with ENOSYS so glibc falls back to clone, which we can inspect).
 * Sockets are an allow-list of families: AF_UNIX, AF_INET and AF_INET6 (the network namespace holds
 * only `lo`); every other family (netlink, vsock, packet, bluetooth, alg, ...) fails with EAFNOSUPPORT,
 * since the network namespace does not cover all of them (AF_VSOCK reaches a VM's host).
 * Other architectures get no filter; the probe reports that.
 */

const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;

const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;

const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

const SOCKET = 41;
const SOCKETPAIR = 53;
/** AF_UNIX, AF_INET, AF_INET6. */
export const ALLOWED_SOCKET_FAMILIES = [1, 2, 10] as const;

const CLONE_NEW_FLAGS =
  0x00020000 /* NEWNS */ |
  0x02000000 /* NEWCGROUP */ |
  0x04000000 /* NEWUTS */ |
  0x08000000 /* NEWIPC */ |
  0x10000000 /* NEWUSER */ |
  0x20000000 /* NEWPID */ |
  0x40000000; /* NEWNET */

/** x86_64 syscall numbers denied with EPERM. */
export const DENIED_SYSCALLS: Record<string, number> = {
  ptrace: 101,
  syslog: 103,
  personality: 135,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  init_module: 175,
  delete_module: 176,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442,
};
const CLONE = 56;
const CLONE3 = 435;

type Insn = [code: number, jt: number, jf: number, k: number];

export function seccompSupported(): boolean {
  return process.arch === 'x64';
}

/** The filter as `struct sock_filter[]` bytes (host endianness, which is little on x86_64). */
export function buildSeccompFilter(): Buffer {
  const denied = Object.values(DENIED_SYSCALLS);
  const prog: Insn[] = [];
  // Jump offsets are relative; the tail of the program is fixed, so compute them against it.
  // Layout: [arch check] [x32 check] [socket families] [deny list...] [clone3] [clone] [allow]
  // [clone flags check ...]
  prog.push([BPF_LD_W_ABS, 0, 0, 4]); // arch
  prog.push([BPF_JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS]);
  prog.push([BPF_LD_W_ABS, 0, 0, 0]); // nr
  prog.push([BPF_JMP_JGE_K, 0, 1, X32_SYSCALL_BIT]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM]);
  // socket/socketpair: the family (args[0], an int: the low 32 bits) must be on the allow-list.
  const families = ALLOWED_SOCKET_FAMILIES.length;
  prog.push([BPF_JMP_JEQ_K, 1, 0, SOCKET]);
  prog.push([BPF_JMP_JEQ_K, 0, families + 3, SOCKETPAIR]);
  prog.push([BPF_LD_W_ABS, 0, 0, 16]);
  ALLOWED_SOCKET_FAMILIES.forEach((family, i) => {
    prog.push([BPF_JMP_JEQ_K, families - i, 0, family]);
  });
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EAFNOSUPPORT]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW]);
  // (the accumulator still holds the syscall number here)
  for (const nr of denied) {
    prog.push([BPF_JMP_JEQ_K, 0, 1, nr]);
    prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM]);
  }
  prog.push([BPF_JMP_JEQ_K, 0, 1, CLONE3]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS]);
  prog.push([BPF_JMP_JEQ_K, 1, 0, CLONE]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW]);
  prog.push([BPF_LD_W_ABS, 0, 0, 16]); // clone flags: args[0], low 32 bits
  prog.push([BPF_JMP_JSET_K, 0, 1, CLONE_NEW_FLAGS]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM]);
  prog.push([BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW]);
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return buf;
}
