//! The interactive chat in a pseudo-terminal, read through a terminal emulator (`vt100`): what a person
//! sees. Alice types while Bob's message arrives; her half-typed line stays whole on the prompt, Bob's line
//! appears above it, and her own line gets its delivery mark once Bob's punch acknowledged it.
#![cfg(unix)]
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::Session;

mod common;
use common::{server, spawn_piped};

/// A program on a pseudo-terminal and the screen it has drawn so far.
struct Term {
    session: expectrl::session::OsSession,
    screen: vt100::Parser,
}

const ROWS: u16 = 24;
const COLS: u16 = 80;

impl Term {
    fn spawn(cmd: Command) -> Term {
        let mut session = Session::spawn(cmd).expect("spawn in a pty");
        session
            .get_process_mut()
            .set_window_size(COLS, ROWS)
            .expect("window size");
        Term {
            session,
            screen: vt100::Parser::new(ROWS, COLS, 0),
        }
    }

    /// Reads what the program wrote since the last call into the emulator.
    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.session.try_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.screen.process(&buf[..n]),
                Err(_) => return,
            }
        }
    }

    fn rows(&self) -> Vec<String> {
        self.screen.screen().rows(0, COLS).collect()
    }

    fn text(&self) -> String {
        self.rows()
            .iter()
            .map(|r| r.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (at most 20 s) until the screen shows `what`.
    fn wait_for(&mut self, what: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            self.pump();
            if self.text().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the screen never showed {what:?}:\n{}", self.text());
    }

    fn typed(&mut self, keys: &str) {
        self.session.write_all(keys.as_bytes()).unwrap();
        self.session.flush().unwrap();
    }

    /// The row the cursor is on: the prompt.
    fn prompt_row(&self) -> String {
        let (row, _) = self.screen.screen().cursor_position();
        self.rows()[usize::from(row)].trim_end().to_string()
    }
}

#[test]
fn typing_while_a_message_arrives_keeps_the_line_whole() {
    let s = server("tokio");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_punch"));
    cmd.args(["chat", "5-test-secret", "--server", &s.1, "--name", "alice"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env_remove("PUNCH_SERVER");
    let mut alice = Term::spawn(cmd);
    alice.wait_for("registered");
    assert_eq!(alice.prompt_row(), ">", "a prompt while waiting");

    let args = ["chat", "5-test-secret", "--server", &s.1, "--name", "bob"];
    let (mut bob, mut bob_in) = spawn_piped(&args, Stdio::null());
    alice.wait_for("path: ");

    alice.typed("I am typing a long sen");
    alice.wait_for("> I am typing a long sen");
    writeln!(bob_in, "interrupting!").unwrap();
    alice.wait_for("<bob> interrupting!");
    assert_eq!(
        alice.prompt_row(),
        "> I am typing a long sen",
        "the half-typed line is intact on the prompt:\n{}",
        alice.text()
    );
    assert!(!alice.text().contains("sen<bob>"), "{}", alice.text());

    alice.typed("tence\r");
    alice.wait_for("✓ <alice> I am typing a long sentence");
    assert_eq!(alice.prompt_row(), ">", "the prompt is empty again");

    alice.typed("/status\r");
    alice.wait_for("0 line(s) waiting for an acknowledgement");

    alice.typed("\x04"); // Ctrl-D
    alice.wait_for("you are done: waiting up to 60 s for bob to finish (Ctrl-C leaves now)");
    drop(bob_in); // bob is done too: the conversation is over
    let bob_out = stdout_after_exit(&mut bob);
    assert!(
        bob_out.contains("<alice> I am typing a long sentence"),
        "bob got alice's line: {bob_out}"
    );

    let start = Instant::now();
    let status = loop {
        alice.pump();
        match alice.session.get_process_mut().status() {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::StillAlive) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("alice did not exit: {other:?}\n{}", alice.text()),
        }
    };
    alice.pump();
    println!("alice's screen at the end:\n{}", alice.text());
    assert_eq!(status, 0, "{}", alice.text());
}

/// The stdout of `c` (piped) once it ended, which must be with exit code 0.
fn stdout_after_exit(c: &mut std::process::Child) -> String {
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = c.wait().unwrap();
    assert!(status.success(), "exit {status}: {out}");
    out
}
