//! The E2B client against the local sandbox server, both real, over real sockets: sandbox
//! lifecycle, files, processes, signals, deadlines, expiry, auth failures and retries.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use osiris_adapters::e2b::{
    Code, CreatedSandbox, DataEvent, E2bClient, E2bError, EndEvent, FileType, NewSandbox, ProcessConfig, ProcessEvent,
    RetryPolicy, Sandbox, Signal, StartOptions,
};
use osiris_adapters::sandbox::{RunningServer, SandboxServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "e2b_wire-test-key-4b1d";

async fn server(root: &Path) -> RunningServer {
    SandboxServer::builder()
        .api_key(KEY)
        .root(root)
        .api_addr("127.0.0.1:0".parse().unwrap())
        .envd_addr("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .expect("the sandbox server binds")
}

fn client(server: &RunningServer, key: &str) -> E2bClient {
    E2bClient::builder()
        .api_key(key)
        .api_url(server.api_url())
        .sandbox_url(server.envd_url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn create(client: &E2bClient, timeout: u32, env: &[(&str, &str)]) -> Sandbox {
    let request = NewSandbox {
        template_id: "base".into(),
        timeout,
        env_vars: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    client.create_sandbox(&request).await.expect("create")
}

fn sh(script: &str) -> ProcessConfig {
    ProcessConfig { cmd: "/bin/sh".into(), args: vec!["-c".into(), script.into()], ..Default::default() }
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; it is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(')').next().unwrap_or_default().trim_start().starts_with('Z'))
        .unwrap_or(false)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn files_round_trip_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let client = client(&server, KEY);
    let sandbox = create(&client, 60, &[]).await;
    let home = server.sandbox_home(sandbox.id()).unwrap();

    let entry = sandbox.upload_bytes("notes/hello.txt", b"hello\n".to_vec()).await.unwrap();
    assert_eq!(entry.path, "/home/user/notes/hello.txt");
    assert_eq!(std::fs::read(home.join("notes/hello.txt")).unwrap(), b"hello\n");

    // A multi-MB file, streamed up and down.
    let local = root.path().join("big.bin");
    let payload = random_bytes(6 * 1024 * 1024 + 123);
    std::fs::write(&local, &payload).unwrap();
    let entry = sandbox.upload_file("/home/user/data/big.bin", &local).await.unwrap();
    assert_eq!(entry.name, "big.bin");

    let stat = sandbox.stat("data/big.bin").await.unwrap().expect("the uploaded file is there");
    assert_eq!(
        (stat.size, stat.file_type, stat.path.as_str()),
        (payload.len() as i64, FileType::File, "/home/user/data/big.bin")
    );
    assert_eq!(sandbox.stat("~/data").await.unwrap().unwrap().file_type, FileType::Directory);
    assert_eq!(sandbox.stat("data/missing.bin").await.unwrap(), None);

    let back = root.path().join("back.bin");
    let n = sandbox.download_file("data/big.bin", &back).await.unwrap();
    assert_eq!(n, payload.len() as u64);
    assert!(std::fs::read(&back).unwrap() == payload, "downloaded bytes differ");
    assert_eq!(sandbox.read_bytes("~/notes/hello.txt").await.unwrap(), b"hello\n");

    let missing = sandbox.download_file("nope.txt", &root.path().join("nope.txt")).await.unwrap_err();
    assert!(matches!(missing, E2bError::FileNotFound { ref path, .. } if path == "nope.txt"), "{missing}");
    assert!(!root.path().join("nope.txt").exists());

    // Nothing outside the home.
    let refused = sandbox.upload_bytes("/etc/osiris-test", b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(refused, E2bError::Http { status: 400, ref message, .. } if message.contains("outside the sandbox home")),
        "{refused}"
    );
    let refused = sandbox.read_bytes("../../etc/passwd").await.unwrap_err();
    assert!(matches!(refused, E2bError::Http { status: 400, .. }), "{refused}");
    server.shutdown().await;
}

#[tokio::test]
async fn processes_stream_output_with_env_cwd_and_exit_codes() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let client = client(&server, KEY);
    let sandbox = create(&client, 60, &[("SANDBOX_WIDE", "from-create"), ("OVERRIDDEN", "create")]).await;
    sandbox.upload_bytes("work/input.txt", b"data".to_vec()).await.unwrap();

    let mut config = sh(
        "echo out:$SANDBOX_WIDE:$OVERRIDDEN:$E2B_SANDBOX:$PER_RUN; echo err >&2; pwd; cat input.txt; echo; echo HOME=$HOME; exit 3",
    );
    config.cwd = Some("work".into());
    config.envs = [("PER_RUN".to_string(), "x1".to_string()), ("OVERRIDDEN".to_string(), "run".to_string())].into();
    let stream = sandbox.start_process(config, StartOptions::default()).await.unwrap();
    assert!(stream.pid() > 0);
    let output = stream.into_output().await.unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let home = server.sandbox_home(sandbox.id()).unwrap();
    let home = home.to_str().unwrap();
    assert_eq!(stdout, format!("out:from-create:run:true:x1\n{home}/work\ndata\nHOME={home}\n"));
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(
        output.end,
        EndEvent { exit_code: 3, exited: true, status: "exit status 3".into(), error: Some("exit status 3".into()) }
    );

    // Output arrives as it is printed, not at the end.
    let mut stream = sandbox.start_process(sh("echo one; sleep 0.5; echo two"), StartOptions::default()).await.unwrap();
    let started = Instant::now();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, ProcessEvent::Data(DataEvent::Stdout(b"one\n".to_vec())));
    assert!(started.elapsed() < Duration::from_millis(400), "first chunk came late: {:?}", started.elapsed());
    let rest: Vec<_> = StreamExt::collect(stream).await;
    assert!(matches!(rest.last(), Some(Ok(ProcessEvent::End(e))) if e.exit_code == 0 && e.exited));

    // A missing cwd is invalid_argument, as envd says.
    let mut bad = sh("true");
    bad.cwd = Some("no/such/dir".into());
    let err = sandbox.start_process(bad, StartOptions::default()).await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(Code::InvalidArgument), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");

    // An absolute sandbox path as the command runs the file from the home.
    sandbox.upload_bytes("bin/hello.sh", b"#!/bin/sh\necho hello from $0\n".to_vec()).await.unwrap();
    let chmod = sandbox.start_process(sh("chmod +x bin/hello.sh"), StartOptions::default()).await.unwrap();
    assert_eq!(chmod.into_output().await.unwrap().end.exit_code, 0);
    let config = ProcessConfig { cmd: "/home/user/bin/hello.sh".into(), ..Default::default() };
    let output = sandbox.start_process(config, StartOptions::default()).await.unwrap().into_output().await.unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("hello from "), "{output:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn deadline_and_signals_kill_whole_process_groups() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let client = client(&server, KEY);
    let sandbox = create(&client, 60, &[]).await;

    // Connect-Timeout-Ms is a kill deadline.
    let started = Instant::now();
    let options = StartOptions { timeout: Some(Duration::from_millis(300)), ..Default::default() };
    let mut stream = sandbox.start_process(sh("sleep 30"), options).await.unwrap();
    let end = stream.next().await.unwrap().unwrap();
    assert_eq!(
        end,
        ProcessEvent::End(EndEvent {
            exit_code: -1,
            exited: false,
            status: "signal: killed".into(),
            error: Some("signal: killed".into())
        })
    );
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.rpc_code(), Some(Code::DeadlineExceeded), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // SendSignal(SIGKILL) takes the background child too; List shows the process meanwhile.
    let mut stream = sandbox.start_process(sh("sleep 30 & echo $!; wait"), StartOptions::default()).await.unwrap();
    let pid = stream.pid();
    let child: u32 = match stream.next().await.unwrap().unwrap() {
        ProcessEvent::Data(DataEvent::Stdout(b)) => String::from_utf8(b).unwrap().trim().parse().unwrap(),
        other => panic!("expected the child's pid, got {other:?}"),
    };
    assert!(alive(child));
    let listed = sandbox.list_processes().await.unwrap();
    assert!(listed.iter().any(|p| p.pid == pid && p.config.cmd == "/bin/sh"), "{listed:?}");
    sandbox.send_signal(pid, Signal::Sigkill).await.unwrap();
    let end = stream.into_output().await.unwrap();
    assert_eq!((end.end.exit_code, end.end.status.as_str()), (-1, "signal: killed"));
    eventually("the background child dies with its group", || !alive(child)).await;
    assert!(sandbox.list_processes().await.unwrap().is_empty());

    // SIGTERM, and an unknown pid.
    let stream = sandbox.start_process(sh("sleep 30"), StartOptions::default()).await.unwrap();
    sandbox.send_signal(stream.pid(), Signal::Sigterm).await.unwrap();
    assert_eq!(stream.into_output().await.unwrap().end.status, "signal: terminated");
    let err = sandbox.send_signal(999_999, Signal::Sigkill).await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(Code::NotFound), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn closing_the_stream_detaches_and_killing_the_sandbox_ends_everything() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let client = client(&server, KEY);
    let sandbox = create(&client, 60, &[]).await;
    let home = server.sandbox_home(sandbox.id()).unwrap();
    sandbox.upload_bytes("keep.txt", b"x".to_vec()).await.unwrap();

    let stream = sandbox.start_process(sh("sleep 30"), StartOptions::default()).await.unwrap();
    let pid = stream.pid();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(alive(pid), "closing the stream must not kill the process");
    assert_eq!(sandbox.list_processes().await.unwrap().len(), 1);

    assert!(client.kill_sandbox(sandbox.id()).await.unwrap());
    eventually("the sandbox's process dies", || !alive(pid)).await;
    assert!(!home.exists(), "the sandbox directory is removed");

    // Gone everywhere afterwards.
    assert!(!client.kill_sandbox(sandbox.id()).await.unwrap());
    let err = client.set_timeout(sandbox.id(), Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, E2bError::SandboxGone { status: 404, .. }), "{err}");
    let err = client.sandbox_info(sandbox.id()).await.unwrap_err();
    assert!(matches!(err, E2bError::SandboxGone { .. }), "{err}");
    let err = sandbox.stat("keep.txt").await.unwrap_err();
    assert!(matches!(err, E2bError::SandboxGone { status: 502, .. }), "{err}");
    let err = sandbox.start_process(sh("true"), StartOptions::default()).await.unwrap_err();
    assert!(matches!(err, E2bError::SandboxGone { .. }), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn sandbox_timeout_expiry_kills_processes() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let client = client(&server, KEY);
    let sandbox = create(&client, 1, &[]).await;
    let info = client.sandbox_info(sandbox.id()).await.unwrap();
    assert!(info.cpu_count >= 1 && info.memory_mb > 0, "{info:?}");
    assert_eq!(info.state, "running");

    let started = Instant::now();
    let output =
        sandbox.start_process(sh("sleep 30"), StartOptions::default()).await.unwrap().into_output().await.unwrap();
    assert_eq!(output.end.status, "signal: killed");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    eventually("the expired sandbox is gone", || server.sandbox_count() == 0).await;
    assert!(matches!(client.sandbox_info(sandbox.id()).await, Err(E2bError::SandboxGone { .. })));

    // set_timeout extends: a 1 s sandbox moved to 60 s survives its first second.
    let sandbox = create(&client, 1, &[]).await;
    client.set_timeout(sandbox.id(), Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sandbox.stat("~").await.unwrap().is_some());

    // Timeouts E2B refuses are refused here too.
    for timeout in [0, 90_000] {
        let request = NewSandbox { template_id: "base".into(), timeout, ..Default::default() };
        let err = client.create_sandbox(&request).await.unwrap_err();
        assert!(matches!(err, E2bError::Http { status: 400, .. }), "{timeout}: {err}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_are_named_without_being_shown() {
    let root = tempfile::tempdir().unwrap();
    let server = server(root.path()).await;
    let wrong = client(&server, "wrong-key-7f3a");
    let err = wrong
        .create_sandbox(&NewSandbox { template_id: "base".into(), timeout: 60, ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, E2bError::BadApiKey { .. }), "{err}");
    let text = format!("{err} {err:?} {wrong:?}");
    assert!(text.contains("E2B_API_KEY"), "{text}");
    assert!(!text.contains("wrong-key-7f3a") && !text.contains(KEY), "{text}");

    // A handle with a wrong access token: 401 on RPCs and files.
    let good = client(&server, KEY);
    let sandbox = create(&good, 60, &[]).await;
    assert!(!format!("{sandbox:?}").contains("X-Access"));
    let forged = CreatedSandbox {
        sandbox_id: sandbox.id().to_string(),
        template_id: "base".into(),
        client_id: String::new(),
        envd_version: "0.6.13".into(),
        envd_access_token: Some("forged-token-91".into()),
        domain: None,
        alias: None,
    };
    let forged = good.sandbox(&forged).unwrap();
    for err in [
        forged.stat("~").await.unwrap_err(),
        forged.read_bytes("x").await.unwrap_err(),
        forged.start_process(sh("true"), StartOptions::default()).await.unwrap_err(),
    ] {
        assert!(matches!(err, E2bError::BadAccessToken { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains("forged-token-91"));
    }

    // The raw status for a missing token, as the SDK sees it.
    let response = reqwest::Client::new()
        .post(format!("{}/filesystem.Filesystem/Stat", server.envd_url()))
        .header("E2b-Sandbox-Id", sandbox.id())
        .header("Content-Type", "application/json")
        .body(r#"{"path":"~"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_servers_are_named_with_their_setting() {
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = E2bClient::builder()
        .api_key("k")
        .api_url(format!("http://127.0.0.1:{port}"))
        .retry(RetryPolicy { max_retries: 1, initial_backoff: Duration::from_millis(1), ..Default::default() })
        .build()
        .unwrap();
    let err = client.kill_sandbox("i1").await.unwrap_err();
    assert!(matches!(err, E2bError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("api_url"), "{text}");
}

/// A one-endpoint HTTP server answering from a script; records each request's head.
async fn scripted(answers: Vec<&'static str>) -> (String, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen2, count2) = (seen.clone(), count.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Head, then the JSON body (Content-Length).
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let i = count2.fetch_add(1, Ordering::SeqCst);
            seen2.lock().unwrap().push(String::from_utf8_lossy(&request).to_string());
            let answer = answers.get(i).or(answers.last()).unwrap();
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        }
    });
    (url, seen, count)
}

const CREATED: &str = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 80\r\n\r\n{\"sandboxID\":\"iretry\",\"templateID\":\"base\",\"clientID\":\"c\",\"envdVersion\":\"0.6.13\"}";

#[tokio::test]
async fn create_is_retried_after_503_with_the_same_idempotency_key() {
    let busy = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    let (url, seen, count) = scripted(vec![busy, CREATED]).await;
    let client = E2bClient::builder().api_key("retry-key").api_url(&url).sandbox_url(&url).build().unwrap();
    let started = Instant::now();
    let sandbox = client
        .create_sandbox(&NewSandbox { template_id: "base".into(), timeout: 30, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(sandbox.id(), "iretry");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After was not honoured: {:?}", started.elapsed());
    let seen = seen.lock().unwrap();
    let key = |head: &str| {
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("idempotency-key:").map(|v| v.trim().to_string()))
    };
    assert!(key(&seen[0]).is_some());
    assert_eq!(key(&seen[0]), key(&seen[1]));
    assert!(seen[0].starts_with("POST /v2/sandboxes HTTP/1.1"), "{}", seen[0]);
    assert!(seen[0].contains("retry-key") && seen[0].to_ascii_lowercase().contains("user-agent: osiris/"));
    assert!(seen[0].contains(r#""templateID":"base""#) && seen[0].contains(r#""timeout":30"#));
}

#[tokio::test]
async fn should_retry_false_and_exhausted_429_are_not_retried_forever() {
    let no = "HTTP/1.1 503 Service Unavailable\r\nShould-Retry: false\r\nConnection: close\r\nContent-Length: 41\r\n\r\n{\"code\":503,\"message\":\"no capacity here\"}";
    let (url, _, count) = scripted(vec![no]).await;
    let client = E2bClient::builder().api_key("k").api_url(&url).build().unwrap();
    let err = client.kill_sandbox("i1").await.unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(matches!(err, E2bError::Http { status: 503, ref message, .. } if message == "no capacity here"), "{err}");

    let limited = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nConnection: close\r\nContent-Length: 41\r\n\r\n{\"code\":429,\"message\":\"slow down please\"}";
    let (url, _, count) = scripted(vec![limited]).await;
    let client = E2bClient::builder()
        .api_key("k")
        .api_url(&url)
        .retry(RetryPolicy { max_retries: 2, ..Default::default() })
        .build()
        .unwrap();
    let err = client.kill_sandbox("i1").await.unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(matches!(err, E2bError::RateLimited { attempts: 3, .. }), "{err}");
}
