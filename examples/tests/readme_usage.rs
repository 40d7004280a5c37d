//! The README's usage block names exactly the flags each command's `--help` lists.
use std::collections::BTreeSet;
use std::process::Command;

/// The `--flags` in `text`, without `--help`, `--version` and the global `--verbose`/`--quiet` (the README
/// states those once for every command).
fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .filter(|w| !["--help", "--version", "--verbose", "--quiet"].contains(w))
        .map(str::to_string)
        .collect()
}

/// The README's usage block: one entry per command (continuation lines joined), keyed by the words after
/// `punch` up to the first argument.
fn usage() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme.find("## Use").expect("a Use section");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix("punch ") {
            let cmd: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .filter(|w| !w.starts_with('-'))
                .collect();
            entries.push((cmd.join(" "), line.to_string()));
        } else if let Some(last) = entries.last_mut() {
            last.1.push_str(line);
        }
    }
    entries
}

#[test]
fn readme_usage_matches_help() {
    let entries = usage();
    let names: Vec<&str> = entries.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "server",
            "nat-type",
            "chat",
            "demo",
            "sim",
            "sim matrix",
            "strategy",
            "bench relay",
            "bench server"
        ]
    );
    let readme = include_str!("../../README.md");
    assert!(readme.contains("`-v`/`--verbose`") && readme.contains("`-q`/`--quiet`"));
    for (cmd, line) in &entries {
        let help = Command::new(env!("CARGO_BIN_EXE_punch"))
            .args(cmd.split(' '))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "punch {cmd} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        assert_eq!(
            flags(line),
            flags(&help),
            "README usage vs `punch {cmd} --help`"
        );
    }
}
