"""Drives `osiris sandbox serve` with the official E2B Python SDK (pinned, see
scripts/e2b_sdk_venv.sh). Run by tests/sandbox_sdk.rs with E2B_API_URL, E2B_SANDBOX_URL and
E2B_API_KEY pointing at the server (normal mode, not E2B_DEBUG). Prints one line per check and
exits non-zero on the first failure."""

import sys
import time

import e2b
from e2b import CommandExitException, Sandbox

EXPECTED_SDK = "2.63.0"


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def main():
    from importlib.metadata import version

    check("sdk version", version("e2b") == EXPECTED_SDK, version("e2b"))
    sbx = Sandbox.create(envs={"FROM_CREATE": "create-value", "OVERRIDE": "create"}, timeout=120)
    check("create", bool(sbx.sandbox_id), sbx.sandbox_id)

    # files: str and bytes, relative and absolute
    sbx.files.write("hello.txt", "hello from the sdk\n")
    sbx.files.write("/home/user/data/blob.bin", bytes(range(256)) * 64)
    check("read text (relative)", sbx.files.read("hello.txt") == "hello from the sdk\n")
    check("read text (absolute)", sbx.files.read("/home/user/hello.txt") == "hello from the sdk\n")
    blob = sbx.files.read("data/blob.bin", format="bytes")
    check("read bytes", bytes(blob) == bytes(range(256)) * 64, f"{len(blob)} bytes")

    # commands: envs, cwd, streamed stdout
    result = sbx.commands.run(
        "echo $FROM_CREATE $OVERRIDE $PER_CMD $E2B_SANDBOX; cat hello.txt",
        envs={"PER_CMD": "cmd-value", "OVERRIDE": "cmd"},
    )
    check(
        "envs visible",
        result.stdout == "create-value cmd cmd-value true\nhello from the sdk\n",
        repr(result.stdout),
    )
    check("exit code 0", result.exit_code == 0, result.exit_code)
    result = sbx.commands.run("pwd; ls", cwd="/home/user/data")
    check("cwd", result.stdout.strip().endswith("/data\nblob.bin"), repr(result.stdout))

    chunks = []
    started = time.monotonic()
    result = sbx.commands.run(
        "for i in 1 2 3 4; do echo tick $i; sleep 0.3; done",
        on_stdout=lambda text: chunks.append((time.monotonic() - started, text)),
    )
    finished = time.monotonic() - started
    check("stdout streamed in chunks", len(chunks) >= 3, repr(chunks))
    check("first chunk before the end", chunks[0][0] < finished - 0.5, f"first at {chunks[0][0]:.2f}s, end {finished:.2f}s")
    check("streamed text", "".join(text for _, text in chunks) == result.stdout, repr(chunks))

    try:
        sbx.commands.run("echo failing >&2; exit 3")
        check("non-zero exit raises", False, "no exception")
    except CommandExitException as error:
        check("non-zero exit raises", error.exit_code == 3, repr(error))
        check("stderr kept", "failing" in error.stderr, repr(error.stderr))

    # stdin: a pipe that SendInput feeds and CloseStdin ends
    handle = sbx.commands.run("read first; echo got $first; cat", background=True, stdin=True)
    sbx.commands.send_stdin(handle.pid, "hello stdin\n")
    sbx.commands.send_stdin(handle.pid, b"more bytes\n")
    sbx.commands.close_stdin(handle.pid)
    result = handle.wait()
    check("send_stdin and close_stdin", result.stdout == "got hello stdin\nmore bytes\n", repr(result.stdout))

    handle = sbx.commands.run("sleep 30", background=True)
    listed = sbx.commands.list()
    check("commands.list", any(p.pid == handle.pid for p in listed), repr(listed))
    check("commands.kill", sbx.commands.kill(handle.pid) is True)

    sbx.set_timeout(60)
    check("kill", sbx.kill() is True)
    check("kill again: gone", sbx.kill() is False)
    check("not running", sbx.is_running() is False)
    print("all SDK checks passed", flush=True)


if __name__ == "__main__":
    main()
