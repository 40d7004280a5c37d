//! The `punch` binary over real loopback UDP sockets, on both runtimes.
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{punch, server, spawn_piped};

/// Spawns `punch chat 5-test-secret --server SERVER --name NAME --json ARGS`, its stdout and stderr going to
/// `output()`; with its stdin.
fn spawn_chat(
    server: &str,
    name: &str,
    args: &[&str],
    output: fn() -> Stdio,
) -> (Child, ChildStdin) {
    let mut c = punch()
        .args([
            "chat",
            "5-test-secret",
            "--server",
            server,
            "--name",
            name,
            "--json",
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    let stdin = c.stdin.take().unwrap();
    (c, stdin)
}

/// A chat on `runtime` whose stdin is `lines`, then ends.
fn chat(runtime: &str, server: &str, name: &str, lines: &[&str], extra: &[&str]) -> Child {
    let args = [&["--runtime", runtime], extra].concat();
    let (c, mut stdin) = spawn_chat(server, name, &args, Stdio::piped);
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    c
}

fn wait(c: Child, limit: Duration) -> Output {
    let start = Instant::now();
    let mut c = c;
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = c.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    c.wait_with_output().unwrap()
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn texts(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .filter(|e| e["event"] == "message")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

fn last_path(evs: &[Value]) -> Option<String> {
    evs.iter()
        .rev()
        .find(|e| e["event"] == "path")
        .map(|e| e["path"].as_str().unwrap().to_string())
}

fn two_peers_chat(runtime: &str, extra: &[&str], expect_path: &str) {
    two_peers_chat_on(server(runtime), runtime, extra, expect_path);
}

fn two_peers_chat_on(s: common::Server, runtime: &str, extra: &[&str], expect_path: &str) {
    let a_lines = ["one", "two", "three", "four"];
    let b_lines = ["uno", "dos", "tres"];
    let a = chat(runtime, &s.1, "alice", &a_lines, extra);
    // The peers start at different times: A's stdin has ended long before B even exists.
    std::thread::sleep(Duration::from_millis(1500));
    let b = chat(runtime, &s.1, "bob", &b_lines, extra);
    let (ao, bo) = (
        wait(a, Duration::from_secs(30)),
        wait(b, Duration::from_secs(30)),
    );
    let (ae, be) = (events(&ao), events(&bo));
    assert!(
        ao.status.success(),
        "alice: {:?}\n{}",
        ao.status,
        String::from_utf8_lossy(&ao.stderr)
    );
    assert!(
        bo.status.success(),
        "bob: {:?}\n{}",
        bo.status,
        String::from_utf8_lossy(&bo.stderr)
    );
    assert_eq!(texts(&ae), b_lines, "alice got bob's lines once, in order");
    assert_eq!(texts(&be), a_lines, "bob got alice's lines once, in order");
    assert_eq!(last_path(&ae).as_deref(), Some(expect_path));
    assert_eq!(last_path(&be).as_deref(), Some(expect_path));
    for evs in [&ae, &be] {
        for kind in ["registered", "paired", "path"] {
            assert!(
                evs.iter().any(|e| e["event"] == kind),
                "missing {kind} event in {evs:?}"
            );
        }
    }
}

#[test]
fn tokio_peers_chat_directly() {
    two_peers_chat("tokio", &[], "direct");
}

#[test]
fn smol_peers_chat_directly() {
    two_peers_chat("smol", &[], "direct");
}

#[test]
fn tokio_peers_chat_through_the_relay() {
    two_peers_chat("tokio", &["--relay-only"], "relay");
}

#[test]
fn smol_peers_chat_through_the_relay() {
    two_peers_chat("smol", &["--relay-only"], "relay");
}

/// `--threads 2`: relays go through the data threads' relay table, everything else through the control thread.
#[test]
fn peers_chat_through_a_two_thread_server() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let s = common::server_with(&addr, &addr, "tokio", &["--threads", "2"]);
    two_peers_chat_on(s, "tokio", &["--relay-only"], "relay");
}

/// `--threads 1`: the single driver loop.
#[test]
fn peers_chat_through_a_one_thread_server() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let s = common::server_with(&addr, &addr, "smol", &["--threads", "1"]);
    two_peers_chat_on(s, "smol", &["--relay-only"], "relay");
}

#[test]
fn server_threads_must_be_a_positive_number() {
    for bad in ["0", "many"] {
        let out = punch().args(["server", "--threads", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--threads {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--threads"), "{err}");
    }
}

#[test]
fn bad_address_is_a_clear_error() {
    let out = punch()
        .args(["chat", "p", "--server", "not an address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid address"));
}

#[test]
fn port_in_use_is_a_clear_error() {
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = punch()
        .args(["server", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot bind UDP") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn bad_listen_and_family_combinations_are_clear_errors() {
    let err = |args: &[&str]| {
        let out = punch().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err(&[
        "server",
        "--listen",
        "127.0.0.1:3555",
        "--listen",
        "127.0.0.1:3555",
    ]);
    assert!(e.contains("given twice"), "{e}");
    let e = err(&["server", "--listen", "127.0.0.1:3555", "--alt-ip", "::1"]);
    assert!(e.contains("same family"), "{e}");
    // An IPv4 socket cannot reach an IPv6-only server: said before anything is sent.
    let e = err(&[
        "chat",
        "5-guitar-revenge",
        "--bind",
        "0.0.0.0:0",
        "--server",
        "[::1]:9",
    ]);
    assert!(e.contains("only IPv6"), "{e}");
}

#[test]
fn unreachable_server_is_reported_within_ten_seconds() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let c = chat("tokio", &addr, "x", &[], &[]);
    let out = wait(c, Duration::from_secs(20));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(2));
    let evs = events(&out);
    assert!(
        evs.iter()
            .any(|e| e["event"] == "error" && e["code"] == "server_unreachable"),
        "{evs:?}"
    );
}

#[test]
fn third_peer_in_a_pool_is_refused() {
    let s = server("tokio");
    // a and b are still chatting (their stdin stays open) when c arrives.
    let (a, a_in) = spawn_chat(&s.1, "a", &[], Stdio::null);
    let (b, b_in) = spawn_chat(&s.1, "b", &[], Stdio::null);
    std::thread::sleep(Duration::from_millis(500));
    let c = chat("tokio", &s.1, "c", &[], &[]);
    let out = wait(c, Duration::from_secs(15));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(events(&out).iter().any(|e| e["event"] == "error"
        && e["code"] == "pool_full"
        && e["message"].as_str().unwrap().contains("pool full")));
    drop((a_in, b_in));
    let _ = wait(a, Duration::from_secs(10));
    let _ = wait(b, Duration::from_secs(10));
}

#[test]
fn demo_runs_and_exits_zero() {
    let out = punch()
        .args(["demo", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(&out);
    assert_eq!(evs.len(), 2);
    assert!(evs.iter().all(|e| e["ok"] == true));
}

#[test]
fn chat_ends_through_conversation_done() {
    let s = server("tokio");
    let a = chat("tokio", &s.1, "alice", &["ping"], &[]);
    let b = chat("tokio", &s.1, "bob", &["pong"], &[]);
    let (ao, bo) = (
        wait(a, Duration::from_secs(30)),
        wait(b, Duration::from_secs(30)),
    );
    assert!(ao.status.success(), "alice: {:?}", ao.status);
    assert!(bo.status.success(), "bob: {:?}", bo.status);
    let (ae, be) = (events(&ao), events(&bo));
    assert_eq!(texts(&ae), ["pong"]);
    assert_eq!(texts(&be), ["ping"]);
    // The first side whose conversation is over leaves on ConversationDone (its last line); the other one
    // either does too, or sees the first leave after it had everything (also exit 0).
    let last = |evs: &[Value]| evs.last().map(|e| e["event"].as_str().unwrap().to_string());
    let ended: Vec<Option<String>> = vec![last(&ae), last(&be)];
    assert!(
        ended
            .iter()
            .any(|e| e.as_deref() == Some("conversation_done")),
        "neither side ended on conversation_done: {ended:?}"
    );
    for evs in [&ae, &be] {
        assert!(evs.iter().any(|e| e["event"] == "peer_finished"));
        assert!(!evs.iter().any(|e| e["event"] == "error"), "{evs:?}");
    }
}

/// `punch strategy` gives, for every chat scenario the real-NAT lab runs, the verdict of the table the lab
/// used to restate in bash (lab/run-lab.sh before `punch strategy`).
#[test]
fn strategy_gives_the_labs_expected_paths() {
    fn lab_table(a: &str, b: &str, fa: &str, fb: &str, stay: u64) -> &'static str {
        if matches!((a, b), ("symmetric", "symmetric")) {
            return "relay";
        }
        // Symmetric against port-restricted: birthday probing (direct within 15 s in 99.7 % of runs).
        // Port-restricted pairs used to race ("either", or "direct" only after the retry rounds): the
        // opener settles them in the first round.
        let _ = (fa, fb, stay);
        "direct"
    }
    let kinds = [
        "open",
        "full-cone",
        "restricted",
        "port-restricted",
        "symmetric",
    ];
    for a in kinds {
        for b in kinds {
            for (fa, fb) in [("no", "no"), ("yes", "yes"), ("yes", "no"), ("no", "yes")] {
                for stay in [0u64, 95] {
                    let out = punch()
                        .args(["strategy", a, b, "--fw-a", fa, "--fw-b", fb])
                        .args(["--stay", &stay.to_string()])
                        .output()
                        .unwrap();
                    assert!(out.status.success());
                    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    assert_eq!(
                        got,
                        lab_table(a, b, fa, fb, stay),
                        "{a} {b} fw={fa}/{fb} stay {stay}"
                    );
                }
            }
        }
    }
    let out = punch()
        .args(["strategy", "symmetric", "port-restricted", "--json"])
        .output()
        .unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["v"], 1, "schema version");
    assert!(
        v["ts"].as_u64().unwrap() > 1_700_000_000_000,
        "a Unix time in ms"
    );
    let o = v.as_object_mut().unwrap();
    o.remove("v");
    o.remove("ts");
    assert_eq!(
        v,
        serde_json::json!({"strategy": "birthday", "path": "direct"})
    );
    let out = punch()
        .args(["strategy", "open", "cgnat"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown kind is a usage error"
    );
}

/// Spawns `punch ARGS --json` with piped stdin and stdout (stderr discarded).
fn json_chat(args: &[&str]) -> (Child, ChildStdin) {
    spawn_piped(&[args, &["--json"]].concat(), Stdio::null())
}

/// `punch chat` with no code gets a nameplate from the server and prints the code; the partner joins with it.
#[test]
fn chat_without_a_code_gets_one_from_the_server() {
    let s = server("tokio");
    let (mut a, mut a_in) = json_chat(&["chat", "--server", &s.1, "--name", "alice"]);
    let mut out = std::io::BufReader::new(a.stdout.take().unwrap());
    let code = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "no code"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "code_allocated" {
            break v["code"].as_str().unwrap().to_string();
        }
    };
    assert!(code.starts_with("1-"), "{code}");
    let (b, mut b_in) = json_chat(&["chat", &code, "--server", &s.1]);
    writeln!(b_in, "hello creator").unwrap();
    drop(b_in);
    writeln!(a_in, "hello joiner").unwrap();
    drop(a_in);
    let bo = wait(b, Duration::from_secs(30));
    assert_eq!(texts(&events(&bo)), ["hello joiner"]);
    let rest: String = std::io::Read::bytes(out)
        .map_while(Result::ok)
        .map(char::from)
        .collect();
    assert!(rest.contains("hello creator"), "{rest}");
    let _ = a.wait();
}

/// Two `--json` chats on tokio; alice's stdin is `alice` (raw bytes), bob's is empty. Both outputs.
fn alice_to_bob(alice: &[u8], bob_args: &[&str]) -> (Output, Output) {
    let s = server("tokio");
    let (a, mut a_in) = spawn_chat(&s.1, "alice", &[], Stdio::piped);
    a_in.write_all(alice).unwrap();
    drop(a_in);
    let bob = [
        &["chat", "5-test-secret", "--server", &s.1, "--name", "bob"][..],
        bob_args,
    ];
    let (b, b_in) = spawn_piped(&bob.concat(), Stdio::piped());
    drop(b_in); // bob types nothing
    (
        wait(a, Duration::from_secs(30)),
        wait(b, Duration::from_secs(30)),
    )
}

fn errors(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .filter(|e| e["event"] == "error")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_line_that_is_not_utf8_is_skipped_by_number_and_reading_goes_on() {
    let (ao, bo) = alice_to_bob(b"one\n\xff\xfe two\nthree\n", &["--json"]);
    let ae = events(&ao);
    assert_eq!(errors(&ae), ["line 2 is not UTF-8: skipped"]);
    assert_eq!(texts(&events(&bo)), ["one", "three"]);
    assert_eq!(ao.status.code(), Some(1), "a line was not delivered");
}

#[test]
fn a_refused_line_makes_the_exit_code_1() {
    let long = "x".repeat(2000);
    let (ao, bo) = alice_to_bob(format!("{long}\nok\n").as_bytes(), &["--json"]);
    let ae = events(&ao);
    let errs = errors(&ae);
    assert!(
        errs.len() == 1 && errs[0].starts_with("not sent"),
        "{errs:?}"
    );
    assert_eq!(texts(&events(&bo)), ["ok"]);
    assert_eq!(ao.status.code(), Some(1));
    assert_eq!(bo.status.code(), Some(0));
}

#[test]
fn a_peers_control_characters_are_escaped_in_text_mode() {
    let (ao, bo) = alice_to_bob("\u{1b}[31mred\tok\u{202e}\n".as_bytes(), &[]);
    assert!(ao.status.success(), "{ao:?}");
    let out = String::from_utf8_lossy(&bo.stdout);
    assert_eq!(out, "<alice> \\x1b[31mred\tok\\u{202e}\n");
    assert!(!bo.stderr.contains(&0x1b), "no raw ESC on stderr either");
}

/// The JSON lines of a running chat's stdout, as they come.
fn json_lines(c: &mut Child) -> std::sync::mpsc::Receiver<Value> {
    use std::io::BufRead;
    let out = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { return };
            if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (at most `limit`) for an event of `kind` on `rx`.
fn wait_for(rx: &std::sync::mpsc::Receiver<Value>, kind: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while let Ok(e) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if e["event"] == kind {
            return true;
        }
    }
    false
}

/// Alice and bob chat; alice leaves by `leave`; bob must hear it within about a second. With `reuse`, a new
/// pair then chats with the same code at once.
fn leaving_tells_the_peer(
    alice_args: &[&str],
    leave: impl FnOnce(&mut Child, ChildStdin),
    alice_code: Option<i32>,
    reuse: bool,
) {
    let s = server("tokio");
    let (mut a, a_in) = spawn_chat(&s.1, "alice", alice_args, Stdio::piped);
    let (mut b, b_in) = spawn_chat(&s.1, "bob", &[], Stdio::piped);
    let (ae, be) = (json_lines(&mut a), json_lines(&mut b));
    assert!(
        wait_for(&ae, "path", Duration::from_secs(15)),
        "alice has a path"
    );
    assert!(
        wait_for(&be, "path", Duration::from_secs(15)),
        "bob has a path"
    );
    let left = Instant::now();
    leave(&mut a, a_in);
    assert!(
        wait_for(&be, "disconnected", Duration::from_secs(2)),
        "bob learns that alice left"
    );
    assert!(
        left.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        left.elapsed()
    );
    let (ao, bo) = (
        wait(a, Duration::from_secs(10)),
        wait(b, Duration::from_secs(10)),
    );
    assert_eq!(ao.status.code(), alice_code);
    assert_eq!(bo.status.code(), Some(1), "bob's peer went early");
    drop(b_in);
    if !reuse {
        return;
    }
    // Both left the pool: a new pair can use the same code at once.
    let c = chat("tokio", &s.1, "carol", &["hi"], &[]);
    let d = chat("tokio", &s.1, "dave", &["yo"], &[]);
    let (co, d_o) = (
        wait(c, Duration::from_secs(30)),
        wait(d, Duration::from_secs(30)),
    );
    assert!(co.status.success(), "carol: {:?}", events(&co));
    assert!(d_o.status.success(), "dave: {:?}", events(&d_o));
    assert_eq!(texts(&events(&co)), ["yo"]);
    assert_eq!(texts(&events(&d_o)), ["hi"]);
}

#[test]
fn ctrl_c_tells_the_peer_at_once() {
    leaving_tells_the_peer(
        &[],
        |a, _stdin| {
            let st = Command::new("kill")
                .args(["-INT", &a.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
        },
        Some(130),
        false,
    );
}

#[test]
fn wait_running_out_tells_the_peer_at_once() {
    // Alice's stdin ends and bob never finishes: with --wait 0 alice leaves at once (exit 0: all delivered).
    leaving_tells_the_peer(&["--wait", "0"], |_, stdin| drop(stdin), Some(0), false);
}

/// After PeerLeft the partner leaves too (a signed Leave from its link), so the server frees the nameplate
/// at once and the next pair on the same code is not paired with a ghost.
#[test]
fn the_code_is_free_again_right_after_a_pair_leaves() {
    let interrupt = |a: &mut Child, _| {
        let st = Command::new("kill")
            .args(["-INT", &a.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    leaving_tells_the_peer(&[], interrupt, Some(130), true);
}
