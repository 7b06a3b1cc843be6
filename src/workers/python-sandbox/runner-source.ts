/**
 * The interpreter-side half of a sandbox, written to a read-only file at start and run by Debian's
 * python3 inside the chain. It speaks JSON lines: commands on fd 3, events on fd 4. User code keeps the
 * real fd 1/2 (so subprocess output streams too); after each run the runner writes a per-run marker on
 * both, which tells the worker that everything printed by that run has arrived.
 *
 * The runner is not a security boundary: user code runs in its process and can forge events. It can only
 * lie about its own results; the walls are the namespaces, cgroups, rlimits and seccomp around it.
 * Kept as a TypeScript string so `tsc` ships it in dist/ with no copy step.
 */
export const RUNNER_SOURCE = String.raw`
import ast, base64, builtins, errno, importlib, io, json, linecache, os, queue, shutil, signal, stat, sys, threading, time, traceback

CTRL_IN, CTRL_OUT = 3, 4
_cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
_lock = threading.Lock()
_commands = queue.Queue()
_state = {"running": None, "cells": 0}
_main_ident = threading.main_thread().ident
_runner_pid = os.getpid()
REPR_LIMIT = 64 * 1024
FIG_LIMIT = 8 * 1024 * 1024

for _p in reversed(_cfg.get("paths", [])):
    sys.path.insert(0, _p)
if _cfg.get("cwd"):
    os.chdir(_cfg["cwd"])

sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True, write_through=True)
sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True, write_through=True)
sys.stdin = io.StringIO("")

# Bulk file data crosses the control pipes: 1 MiB pipes instead of 64 KiB save a wake-up per 64 KiB.
try:
    import fcntl
    for _fd in (CTRL_IN, CTRL_OUT):
        fcntl.fcntl(_fd, 1031, 1 << 20)  # F_SETPIPE_SZ
except (ImportError, OSError):
    pass


def _send(obj):
    if os.getpid() != _runner_pid:
        # A child forked by user code inherited the runner; it must never answer for it.
        os._exit(0)
    # Bulk bytes (file data) follow the line raw: {"bin": n} announces them; no base64, no JSON escaping.
    payload = obj.pop("_bin", None)
    if payload is not None:
        obj["bin"] = len(payload)
    data = (json.dumps(obj, default=str) + "\n").encode()
    with _lock:
        for part in (data, payload or b""):
            view = memoryview(part)
            while view:
                n = os.write(CTRL_OUT, view)
                view = view[n:]


def _reader():
    buf = b""
    pending = None  # a command whose {"bin": n} bytes are still arriving
    while True:
        if pending is not None and len(buf) >= pending["bin"]:
            n = pending["bin"]
            pending["_bin"], buf = buf[:n], buf[n:]
            _commands.put(pending)
            pending = None
            continue
        if pending is None and b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            if not isinstance(cmd, dict):
                continue
            if isinstance(cmd.get("bin"), int) and cmd["bin"] >= 0:
                pending = cmd
            elif cmd.get("op") == "interrupt":
                if _state["running"] is not None and _state["running"] == cmd.get("id"):
                    # Aimed at the main thread so a blocking call there (sleep, read) returns EINTR.
                    signal.pthread_kill(_main_ident, signal.SIGINT)
            else:
                _commands.put(cmd)
            continue
        try:
            chunk = os.read(CTRL_IN, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            os._exit(0)
        buf += chunk


def _repr(value):
    try:
        text = repr(value)
    except BaseException as e:
        text = "<unrepresentable %s: %s>" % (type(value).__name__, e)
    if len(text) > REPR_LIMIT:
        text = text[:REPR_LIMIT] + "... [repr truncated]"
    return text


def _user_tb(tb):
    first = tb
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    return tb if tb is not None else first


def _exc_info(e):
    info = {"type": type(e).__name__, "message": str(e)[:REPR_LIMIT]}
    try:
        info["traceback"] = "".join(traceback.format_exception(type(e), e, _user_tb(e.__traceback__)))[-REPR_LIMIT:]
    except BaseException:
        info["traceback"] = info["type"] + ": " + info["message"]
    if isinstance(e, OSError) and e.errno is not None:
        info["errno"] = e.errno
    return info


def _syntax_info(e):
    return {
        "type": type(e).__name__,
        "message": str(e.msg if hasattr(e, "msg") else e),
        "line": getattr(e, "lineno", None),
        "column": getattr(e, "offset", None),
        "endLine": getattr(e, "end_lineno", None),
        "endColumn": getattr(e, "end_offset", None),
        "text": (getattr(e, "text", None) or "")[:1000],
        "traceback": "".join(traceback.format_exception_only(type(e), e))[-REPR_LIMIT:],
    }


def _figures():
    plt = sys.modules.get("matplotlib.pyplot")
    out = []
    if plt is None:
        return out
    total = 0
    try:
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            data = buf.getvalue()
            total += len(data)
            if total > FIG_LIMIT:
                break
            out.append({"name": "figure-%d.png" % num, "data": base64.b64encode(data).decode()})
        plt.close("all")
    except BaseException as e:
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
    return out


def _reap():
    if not _cfg.get("reap"):
        return 0
    me = os.getpid()
    killed = 0
    for _ in range(100):
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (1, me):
                try:
                    with open("/proc/%s/stat" % name) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            continue
                except OSError:
                    continue
                pids.append(int(name))
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.002)
    return killed


# --- Workspace file work -------------------------------------------------------------------------------
# Every file operation of the worker runs here, as the sandbox uid and inside the sandbox's mount
# namespace, so a path can only ever reach what the sandbox itself can reach. Paths are walked one
# component at a time from a directory fd with O_NOFOLLOW: a symlink anywhere in a path is refused,
# never followed, whatever swaps it in meanwhile.
_WS = _cfg.get("cwd") or "."
_SNAP_LIMIT = 2000
_WALK_LIMIT = 50000


class _FsErr(Exception):
    def __init__(self, code, message, **details):
        Exception.__init__(self, message)
        self.code = code
        self.details = details


def _fs_parts(path):
    if not isinstance(path, str) or "\x00" in path:
        raise _FsErr("path_outside_workspace", "bad path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _FsErr("path_outside_workspace", '"%s" leaves the workspace' % path)
    return parts


def _fs_oserr(e, rel):
    n = e.errno
    if n == errno.ENOENT:
        return _FsErr("file_not_found", 'no such file in the workspace: "%s"' % rel, path=rel)
    if n in (errno.ELOOP, errno.EMLINK):
        return _FsErr("path_outside_workspace", '"%s" goes through a symlink; file operations never follow links' % rel, path=rel)
    if n == errno.ENOTDIR:
        return _FsErr("file_not_found", '"%s": a parent is not a directory' % rel, path=rel)
    if n == errno.EISDIR:
        return _FsErr("invalid_payload", '"%s" is a directory' % rel)
    if n in (errno.ENOSPC, errno.EDQUOT):
        return _FsErr("workspace_full", 'no space left in the workspace writing "%s"' % rel, path=rel)
    if n == errno.EFBIG:
        return _FsErr("file_too_large", '"%s" is over the file size limit' % rel, path=rel)
    if n == errno.ENOTEMPTY:
        return _FsErr("conflict", '"%s" is a non-empty directory; pass recursive: true' % rel)
    if n == errno.EEXIST:
        return _FsErr("conflict", '"%s" exists' % rel)
    if n in (errno.ENXIO, errno.ENODEV):
        return _FsErr("path_outside_workspace", '"%s" is not a regular file' % rel)
    return _FsErr("internal", 'file operation failed on "%s": %s' % (rel, e))


def _fs_walk(parts, rel, create=False):
    """An fd for the directory parts[] below the workspace root; never through a symlink."""
    fd = os.open(_WS, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        raise e
                    if stat.S_ISLNK(st.st_mode):
                        raise _FsErr("path_outside_workspace", '"%s" goes through a symlink ("%s"); file operations never follow links' % (rel, "/".join(parts[: i + 1])), path=rel)
                    raise _FsErr("file_not_found", '"%s": "%s" is not a directory' % (rel, "/".join(parts[: i + 1])), path=rel)
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _fs_kind(mode):
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _fs_entry(rel, st):
    return {
        "path": rel,
        "name": rel.rsplit("/", 1)[-1],
        "type": _fs_kind(st.st_mode),
        "size": st.st_size,
        "mtimeMs": st.st_mtime_ns // 1000000,
        "mode": "%03o" % (st.st_mode & 0o777),
    }


def _fs_name(name):
    return os.fsdecode(name) if isinstance(name, bytes) else name


def _fs_parent(path, create=False):
    parts = _fs_parts(path)
    if not parts:
        return None, None, ""
    rel = "/".join(parts)
    return _fs_walk(parts[:-1], rel, create), parts[-1], rel


def _fs_read(cmd):
    dfd, name, rel = _fs_parent(cmd.get("path", ""))
    if dfd is None:
        raise _FsErr("invalid_payload", "the workspace root is a directory; use list")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _FsErr("invalid_payload", '"%s" is a directory; use list' % rel)
        if not stat.S_ISREG(st.st_mode):
            raise _FsErr("path_outside_workspace", '"%s" is not a regular file' % rel)
        limit = int(cmd.get("max", 0))
        if st.st_size > limit:
            raise _FsErr("file_too_large", '"%s" is %d bytes, over the %d-byte transfer cap' % (rel, st.st_size, limit), size=st.st_size, limit=limit)
        chunks, total = [], 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            total += len(b)
            if total > limit:
                raise _FsErr("file_too_large", '"%s" grew past the %d-byte transfer cap' % (rel, limit), limit=limit)
            chunks.append(b)
        return {"path": rel, "_bin": b"".join(chunks)}
    finally:
        os.close(fd)


def _fs_write(cmd):
    dfd, name, rel = _fs_parent(cmd.get("path", ""), create=True)
    if dfd is None:
        raise _FsErr("invalid_payload", "cannot write to the workspace root")
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _FsErr("conflict", '"%s" exists and is a %s' % (rel, _fs_kind(st.st_mode)))
        if st is not None and not cmd.get("overwrite", True):
            raise _FsErr("conflict", '"%s" exists; pass overwrite: true to replace it' % rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        flags |= os.O_TRUNC if cmd.get("overwrite", True) else os.O_EXCL
        fd = os.open(name, flags, 0o644, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _FsErr("path_outside_workspace", '"%s" is not a regular file' % rel)
        view = memoryview(cmd.get("_bin") or b"")
        size = len(view)
        while view:
            view = view[os.write(fd, view):]
        return {"path": rel, "size": size}
    finally:
        os.close(fd)


def _fs_stat(cmd):
    dfd, name, rel = _fs_parent(cmd.get("path", ""))
    if dfd is None:
        return _fs_entry("", os.stat(_WS))
    try:
        return _fs_entry(rel, os.stat(name, dir_fd=dfd, follow_symlinks=False))
    finally:
        os.close(dfd)


def _fs_list(cmd):
    parts = _fs_parts(cmd.get("path", ""))
    base = "/".join(parts)
    limit = int(cmd.get("limit", 1000))
    recursive = bool(cmd.get("recursive"))
    entries = []
    queue_ = [(_fs_walk(parts, base), base)]
    try:
        while queue_:
            fd, drel = queue_.pop(0)
            try:
                names = sorted(os.listdir(fd))
                for name in names:
                    if len(entries) >= limit:
                        return {"path": base, "entries": entries, "truncated": True}
                    crel = drel + "/" + name if drel else name
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    entries.append(_fs_entry(crel, st))
                    if recursive and stat.S_ISDIR(st.st_mode):
                        try:
                            cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                        except OSError:
                            continue
                        queue_.append((cfd, crel))
            finally:
                os.close(fd)
        return {"path": base, "entries": entries, "truncated": False}
    finally:
        for fd, _ in queue_:
            os.close(fd)


def _fs_delete(cmd):
    dfd, name, rel = _fs_parent(cmd.get("path", ""))
    if dfd is None:
        raise _FsErr("invalid_payload", "cannot delete the workspace root")
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if cmd.get("recursive"):
                shutil.rmtree(name, dir_fd=dfd)
            else:
                os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)
        return {"path": rel}
    finally:
        os.close(dfd)


def _fs_move(cmd):
    sfd, sname, srel = _fs_parent(cmd.get("from", ""))
    if sfd is None:
        raise _FsErr("invalid_payload", "cannot move the workspace root")
    try:
        os.stat(sname, dir_fd=sfd, follow_symlinks=False)
        tfd, tname, trel = _fs_parent(cmd.get("to", ""), create=True)
        if tfd is None:
            raise _FsErr("invalid_payload", "cannot move onto the workspace root")
        try:
            if not cmd.get("overwrite"):
                try:
                    os.stat(tname, dir_fd=tfd, follow_symlinks=False)
                    raise _FsErr("conflict", '"%s" exists; pass overwrite: true to replace it' % trel)
                except FileNotFoundError:
                    pass
            os.rename(sname, tname, src_dir_fd=sfd, dst_dir_fd=tfd)
            return {"from": srel, "to": trel}
        finally:
            os.close(tfd)
    finally:
        os.close(sfd)


def _fs_mkdir(cmd):
    parts = _fs_parts(cmd.get("path", ""))
    os.close(_fs_walk(parts, "/".join(parts), create=True))
    return {"path": "/".join(parts), "created": bool(parts)}


def _fs_snapshot():
    """Workspace files (path -> [size, mtime_ns]) for telling what a run wrote; bounded."""
    out = {}
    stack = [("", None)]
    seen = 0
    while stack and len(out) < _SNAP_LIMIT and seen < _WALK_LIMIT:
        rel, _ = stack.pop()
        try:
            fd = _fs_walk(rel.split("/") if rel else [], rel)
        except BaseException:
            continue
        try:
            for name in os.listdir(fd):
                seen += 1
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                crel = rel + "/" + name if rel else name
                if stat.S_ISDIR(st.st_mode):
                    stack.append((crel, None))
                elif stat.S_ISREG(st.st_mode) and len(out) < _SNAP_LIMIT:
                    out[crel] = [st.st_size, st.st_mtime_ns]
        finally:
            os.close(fd)
    return out


def _fs_diff(before, after):
    files = []
    for path, (size, mtime) in after.items():
        old = before.get(path)
        if old is None:
            files.append({"path": path, "size": size, "change": "created"})
        elif old[0] != size or old[1] != mtime:
            files.append({"path": path, "size": size, "change": "modified"})
    files.sort(key=lambda f: f["path"])
    return files[:200]


_FS_OPS = {"read": _fs_read, "write": _fs_write, "stat": _fs_stat, "list": _fs_list, "delete": _fs_delete, "move": _fs_move, "mkdir": _fs_mkdir}


def _fs(cmd):
    reply = {"t": "fs", "id": cmd.get("id")}
    try:
        fn = _FS_OPS.get(cmd.get("action"))
        if fn is None:
            raise _FsErr("invalid_payload", "unknown file action")
        reply["ok"] = True
        reply["result"] = fn(cmd)
        if "_bin" in reply["result"]:
            reply["_bin"] = reply["result"].pop("_bin")
    except _FsErr as e:
        reply.update(ok=False, error={"code": e.code, "message": str(e), "details": e.details})
    except OSError as e:
        err = _fs_oserr(e, cmd.get("path") or cmd.get("from") or "")
        reply.update(ok=False, error={"code": err.code, "message": str(err), "details": err.details, "errno": e.errno})
    except BaseException as e:
        reply.update(ok=False, error={"code": "internal", "message": "%s: %s" % (type(e).__name__, e)})
    return reply


_ns = {"__name__": "__main__", "__builtins__": builtins}


def _exec(cmd):
    _state["cells"] += 1
    name = "<cell-%d>" % _state["cells"]
    code = cmd.get("code", "")
    result = {"t": "done", "id": cmd["id"], "ok": True, "exitStatus": 0}
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    try:
        tree = ast.parse(code, name, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        result.update(ok=False, exitStatus=1, error=_syntax_info(e) if isinstance(e, SyntaxError) else _exc_info(e), syntax=isinstance(e, SyntaxError))
        return result
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    importlib.invalidate_caches()
    before = _fs_snapshot() if cmd.get("files") else None
    _state["running"] = cmd["id"]
    try:
        exec(compile(tree, name, "exec"), _ns)
        if last is not None:
            value = eval(compile(last, name, "eval"), _ns)
            if value is not None:
                _ns["_"] = value
                result["value"] = _repr(value)
                result["valueType"] = type(value).__name__
    except KeyboardInterrupt as e:
        result.update(ok=False, exitStatus=130, interrupted=True, error=_exc_info(e))
    except SystemExit as e:
        code_ = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        result.update(ok=code_ == 0, exitStatus=code_)
        if code_ != 0:
            result["error"] = _exc_info(e)
    except BaseException as e:
        result.update(ok=False, exitStatus=1, error=_exc_info(e))
    finally:
        _state["running"] = None
    if before is not None:
        try:
            result["files"] = _fs_diff(before, _fs_snapshot())
        except BaseException:
            result["files"] = []
    return result


def _finish(cmd, result):
    if os.getpid() != _runner_pid:
        os._exit(0)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    if cmd.get("figures", True):
        result["figures"] = _figures()
    result["reaped"] = _reap()
    marker = ("\x00FLEET-END:%s\x00" % cmd.get("nonce", "")).encode()
    for fd in (1, 2):
        try:
            os.write(fd, marker)
        except OSError:
            pass
    _send(result)


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


_RULES = [
    ("eval", "high", "eval() runs arbitrary code"),
    ("exec", "high", "exec() runs arbitrary code"),
    ("compile", "medium", "compile() builds code objects from strings"),
    ("__import__", "medium", "dynamic import"),
    ("os.system", "high", "runs a shell command"),
    ("os.popen", "high", "runs a shell command"),
    ("os.exec", "high", "replaces the process with another program"),
    ("os.spawn", "high", "starts another program"),
    ("os.fork", "medium", "forks the process"),
    ("os.kill", "medium", "sends signals to processes"),
    ("subprocess.", "high", "starts another program"),
    ("socket.", "medium", "opens network sockets"),
    ("urllib.request.", "medium", "network access"),
    ("http.client.", "medium", "network access"),
    ("requests.", "medium", "network access"),
    ("ctypes.", "high", "calls native code directly"),
    ("pickle.load", "medium", "unpickling runs arbitrary code"),
    ("marshal.load", "medium", "loads code objects"),
    ("shutil.rmtree", "low", "deletes a directory tree"),
    ("os.remove", "low", "deletes files"),
    ("os.unlink", "low", "deletes files"),
]
_RISKY_MODULES = {"subprocess", "socket", "ctypes", "pickle", "marshal", "multiprocessing", "pty", "urllib.request", "http.client", "requests"}


def _complexity(fn):
    score = 1
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler, ast.Assert)):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.match_case):
            score += 1
        stack.extend(ast.iter_child_nodes(node))
    return score


def _signature(fn):
    sig = "%s(%s)" % (fn.name, ast.unparse(fn.args))
    if fn.returns is not None:
        sig += " -> " + ast.unparse(fn.returns)
    return ("async " if isinstance(fn, ast.AsyncFunctionDef) else "") + "def " + sig


def _fn_info(fn):
    return {
        "name": fn.name,
        "line": fn.lineno,
        "endLine": getattr(fn, "end_lineno", None),
        "signature": _signature(fn),
        "docstring": ast.get_docstring(fn),
        "async": isinstance(fn, ast.AsyncFunctionDef),
        "decorators": [ast.unparse(d) for d in fn.decorator_list],
    }


def _analyze(code):
    out = {"syntaxErrors": [], "imports": [], "functions": [], "classes": [], "variables": [], "complexity": [],
           "undefinedNames": [], "unusedImports": [], "warnings": [], "security": [], "pyflakes": False, "lines": code.count("\n") + 1}
    try:
        tree = ast.parse(code, "<code>", "exec")
    except SyntaxError as e:
        out["syntaxErrors"].append(_syntax_info(e))
        return out
    except (ValueError, RecursionError, MemoryError) as e:
        out["syntaxErrors"].append({"type": type(e).__name__, "message": str(e), "line": None, "column": None})
        return out
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out["imports"].append({"module": a.name, "name": None, "alias": a.asname, "line": node.lineno, "level": 0})
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name in _RISKY_MODULES:
                    out["security"].append({"rule": "import:" + a.name, "severity": "info", "line": node.lineno, "column": node.col_offset + 1, "message": "imports " + a.name})
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            for a in node.names:
                out["imports"].append({"module": mod, "name": a.name, "alias": a.asname, "line": node.lineno, "level": node.level})
                aliases[a.asname or a.name] = (mod + "." + a.name) if mod else a.name
            if mod in _RISKY_MODULES:
                out["security"].append({"rule": "import:" + mod, "severity": "info", "line": node.lineno, "column": node.col_offset + 1, "message": "imports from " + mod})
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out["functions"].append(_fn_info(node))
        elif isinstance(node, ast.ClassDef):
            out["classes"].append({
                "name": node.name, "line": node.lineno, "endLine": getattr(node, "end_lineno", None),
                "bases": [ast.unparse(b) for b in node.bases], "docstring": ast.get_docstring(node),
                "decorators": [ast.unparse(d) for d in node.decorator_list],
                "methods": [_fn_info(m) for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))],
            })
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out["variables"].append({"name": n.id, "line": node.lineno})

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = prefix + child.name
                out["complexity"].append({"name": qual, "line": child.lineno, "complexity": _complexity(child)})
                visit(child, qual + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        resolved = aliases.get(head, head) + ("." + rest if rest else "")
        for prefix, severity, why in _RULES:
            hit = resolved == prefix or (prefix.endswith(".") and resolved.startswith(prefix)) or (not prefix.endswith(".") and "." in prefix and resolved.startswith(prefix))
            if hit:
                out["security"].append({"rule": prefix.rstrip("."), "severity": severity, "line": node.lineno, "column": node.col_offset + 1, "call": resolved, "message": why})
                break

    try:
        from pyflakes import checker, messages
        out["pyflakes"] = True
        w = checker.Checker(tree, filename="<code>")
        for m in sorted(w.messages, key=lambda m: (m.lineno, getattr(m, "col", 0))):
            entry = {"line": m.lineno, "column": getattr(m, "col", 0) + 1, "message": m.message % m.message_args}
            if isinstance(m, messages.UndefinedName):
                entry["name"] = m.message_args[0]
                out["undefinedNames"].append(entry)
            elif isinstance(m, messages.UnusedImport):
                entry["name"] = m.message_args[0]
                out["unusedImports"].append(entry)
            else:
                entry["kind"] = type(m).__name__
                out["warnings"].append(entry)
    except ImportError:
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        for imp in out["imports"]:
            bound = imp["alias"] or (imp["name"] if imp["name"] else imp["module"].split(".")[0])
            if bound != "*" and bound not in used:
                out["unusedImports"].append({"name": bound, "line": imp["line"], "column": 1, "message": "%r imported but unused" % bound})
    return out


def _main():
    for mod in _cfg.get("preload", []):
        try:
            __import__(mod)
        except BaseException:
            pass
    threading.Thread(target=_reader, daemon=True).start()
    _send({"t": "ready", "pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0]})
    pending = None
    while True:
        try:
            pending = None
            cmd = _commands.get()
            op = cmd.get("op")
            if op == "exec":
                pending = cmd
                _finish(cmd, _exec(cmd))
                pending = None
            elif op == "analyze":
                try:
                    res = _analyze(cmd.get("code", ""))
                except RecursionError as e:
                    res = {"syntaxErrors": [{"type": "RecursionError", "message": "code nested too deeply to analyze", "line": None, "column": None}]}
                _send({"t": "analysis", "id": cmd.get("id"), "result": res})
            elif op == "fs":
                _send(_fs(cmd))
            elif op == "ping":
                _send({"t": "pong", "id": cmd.get("id")})
        except KeyboardInterrupt:
            # An interrupt that landed between the user code and the reply: still answer the run.
            if pending is not None:
                _finish(pending, {"t": "done", "id": pending["id"], "ok": False, "exitStatus": 130, "interrupted": True,
                                  "error": {"type": "KeyboardInterrupt", "message": "", "traceback": "KeyboardInterrupt"}})
            continue


_main()
`;
