//! The manual is generated from the command-line definitions: the completion scripts know
//! every command, and each command's man page documents the options its --help lists.

use std::process::Command;

fn opsi_backup(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_opsi-backup"))
        .args(args)
        .env_remove("OPSI_BACKUP_REPOSITORY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `--help` lists (without clap's `help`).
fn commands() -> Vec<String> {
    let help = opsi_backup(&["--help"]);
    let list = &help[help.find("Commands:\n").expect("a command list") + 10..];
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect()
}

/// The long options a command's `--help` lists.
fn long_options(command: &str) -> Vec<String> {
    opsi_backup(&[command, "--help"])
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split([',', ' ', '='])
                .find(|w| w.starts_with("--"))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn completion_scripts_know_every_command() {
    let commands = commands();
    for expected in [
        "create",
        "restore",
        "init",
        "forget",
        "prune",
        "completions",
    ] {
        assert!(commands.iter().any(|c| c == expected), "{commands:?}");
    }
    assert!(!commands.iter().any(|c| c == "man"), "man is hidden");
    for shell in ["bash", "zsh", "fish"] {
        let script = opsi_backup(&["completions", shell]);
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} completion lacks {c}");
        }
    }
    let bash = opsi_backup(&["completions", "bash"]);
    assert!(bash.contains("complete -F _opsi__backup"));
    assert!(bash.contains("--keep-daily") && bash.contains("--single-transaction"));
}

#[test]
fn each_command_has_a_man_page_documenting_its_options() {
    let dir = tempfile::tempdir().unwrap();
    opsi_backup(&["man", dir.path().to_str().unwrap()]);
    let page = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"))
            .replace("\\-", "-")
    };
    let main = page("opsi-backup");
    assert!(main.contains(".TH opsi-backup 1"), "{main}");
    for c in commands() {
        let sub = page(&format!("opsi-backup-{c}"));
        assert!(
            main.contains(&format!("opsi-backup-{c}(1)")),
            "main page lacks {c}"
        );
        assert!(sub.contains(&format!(".TH opsi-backup-{c} 1")));
    }
    let create = page("opsi-backup-create");
    let options = long_options("create");
    for o in [
        "--backends",
        "--compression",
        "--single-transaction",
        "--full",
        "--repository",
    ] {
        assert!(options.iter().any(|x| x == o), "{options:?}");
    }
    for o in &options {
        assert!(create.contains(o.as_str()), "create's man page lacks {o}");
    }
    assert!(
        !dir.path().join("opsi-backup-man.1").exists(),
        "man is hidden"
    );
}
