//! README's "The nightly route", step by step as written, on a scratch server: the package's
//! files (Cargo.toml's `[package.metadata.deb]` assets from contrib/) placed under the root,
//! the sample settings copied, `init`, two nights as the systemd service runs them, the
//! snapshots listed, a restore. Only the repository is moved under the root (the settings'
//! path is taken as written, not under `--root`) and systemd's timer is played by the test.
//! And the paths that contrib/, Cargo.toml and README name agree with each other.

mod common;

use std::fs;
use std::path::Path;

use common::fake_server::FakeServer;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(manifest_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (source in the checkout, destination path) of each file the package installs.
fn deb_assets() -> Vec<(String, String)> {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
            let dest = if dest.ends_with('/') {
                format!(
                    "/{dest}{}",
                    Path::new(src).file_name().unwrap().to_str().unwrap()
                )
            } else {
                format!("/{dest}")
            };
            (src.to_string(), dest)
        })
        .collect()
}

fn dest_of(src: &str) -> String {
    deb_assets()
        .into_iter()
        .find(|(s, _)| s == src)
        .unwrap_or_else(|| panic!("the package does not install {src}"))
        .1
}

/// The repository path a settings file names (commented out or not).
fn repository_in(toml_text: &str) -> String {
    let line = toml_text
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .find(|l| l.starts_with("repository = "))
        .expect("a repository line");
    line.split('"').nth(1).unwrap().to_string()
}

fn latest_id(root: &Path, repo: &Path) -> String {
    let all = common::snapshots(root, repo);
    assert!(!all.is_empty(), "no snapshot");
    all.last().unwrap()["id"].as_str().unwrap().to_string()
}

#[test]
fn the_readme_route_installs_initialises_runs_two_nights_and_restores() {
    let server = FakeServer::new(5, false);
    let root = server.root();
    let repo = server.p("/var/backups/opsi-backup");
    let steps = common::readme::commands("## The nightly route");
    let mut done = Vec::new();
    let mut nights = 0;
    let mut ids = Vec::new();
    let mut snapshots_listed = String::new();
    for step in &steps {
        let words: Vec<&str> = step.split_whitespace().collect();
        match words.as_slice() {
            ["apt", "install", deb] => {
                let expected = format!(
                    "./target/debian/opsi-backup_{}-1_amd64.deb",
                    env!("CARGO_PKG_VERSION")
                );
                assert_eq!(*deb, expected, "the file cargo deb writes");
                // What dpkg would unpack (the built files are checked by tests/deb_package.rs).
                for (src, dest) in deb_assets() {
                    if src.starts_with("target/") {
                        continue;
                    }
                    let to = server.p(&dest);
                    fs::create_dir_all(to.parent().unwrap()).unwrap();
                    fs::copy(manifest_dir().join(&src), &to).unwrap();
                }
                done.push("install");
            }
            ["cp", from, to] => {
                fs::copy(server.p(from), server.p(to)).unwrap();
                // The one change to the route: the repository lies under the scratch root.
                let settings = fs::read_to_string(server.p(to)).unwrap();
                let path = repository_in(&settings);
                assert_eq!(server.p(&path), repo);
                fs::write(
                    server.p(to),
                    settings.replace(&path, &repo.display().to_string()),
                )
                .unwrap();
                done.push("settings");
            }
            ["opsi-backup", "init"] => {
                common::sh(step, root);
                assert!(repo.is_dir(), "init made {}", repo.display());
                done.push("init");
            }
            ["systemctl", "enable", "--now", "opsi-backup.timer"] => {
                let timer =
                    fs::read_to_string(server.p("/usr/lib/systemd/system/opsi-backup.timer"))
                        .unwrap();
                assert!(timer.contains("OnCalendar=*-*-* 03:00:00"), "{timer}");
                assert!(timer.contains("WantedBy=timers.target"), "{timer}");
                let service =
                    fs::read_to_string(server.p("/usr/lib/systemd/system/opsi-backup.service"))
                        .unwrap();
                let exec: Vec<&str> = service
                    .lines()
                    .filter_map(|l| l.strip_prefix("ExecStart="))
                    .collect();
                assert_eq!(
                    exec,
                    [
                        "/usr/bin/opsi-backup create",
                        "/usr/bin/opsi-backup forget --prune"
                    ]
                );
                // Two nights, a client checking in between them.
                for night in 0..2 {
                    fs::write(
                        server.p(&format!(
                            "/var/lib/opsi/config/clients/night{night}.example.org.ini"
                        )),
                        format!("[info]\nnight = {night}\n"),
                    )
                    .unwrap();
                    for e in &exec {
                        common::sh(e, root);
                    }
                    nights += 1;
                    ids.push(latest_id(root, &repo));
                }
                done.push("timer");
            }
            ["opsi-backup", "snapshots"] => {
                snapshots_listed = common::sh(step, root);
                done.push("snapshots");
            }
            ["opsi-backup", "restore", "latest", ..] => {
                // Damage after the second night: a client lost, a stray one added.
                let lost = server.p("/var/lib/opsi/config/clients/night1.example.org.ini");
                let stray = server.p("/var/lib/opsi/config/clients/stray.example.org.ini");
                fs::remove_file(&lost).unwrap();
                fs::write(&stray, "[info]\n").unwrap();
                common::sh(step, root);
                assert_eq!(fs::read_to_string(&lost).unwrap(), "[info]\nnight = 1\n");
                assert!(!stray.exists(), "the file backend is the snapshot's again");
                done.push("restore");
            }
            _ => panic!("the test does not know the README's step `{step}`"),
        }
    }
    assert_eq!(
        done,
        [
            "install",
            "settings",
            "init",
            "timer",
            "snapshots",
            "restore"
        ]
    );
    assert_eq!(nights, 2);
    // Both nights fell on one day: keep_daily = 7 (and weekly, monthly) keep its newest only,
    // so the second night's forget --prune removed the first night's snapshot.
    assert_ne!(ids[0], ids[1]);
    assert_eq!(latest_id(root, &repo), ids[1]);
    assert_eq!(common::snapshots(root, &repo).len(), 1);
    assert!(
        snapshots_listed.contains("opsiserver"),
        "{snapshots_listed}"
    );
}

#[test]
fn contrib_cargo_toml_and_readme_name_the_same_paths() {
    let sample = read("contrib/opsi-backup.toml");
    let conffile = read("contrib/deb/opsi-backup.toml");
    let repository = repository_in(&sample);
    assert_eq!(repository, "/var/backups/opsi-backup");
    assert_eq!(repository_in(&conffile), repository);
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("export OPSI_BACKUP_REPOSITORY={repository} ")),
        "README's repository example names {repository}"
    );
    // The settings block of the route is the sample, line for line.
    let settings: Vec<String> = sample
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let block = common::readme::block("Step 2 puts the sample (`contrib/opsi-backup.toml`) in its place, with a repository and a policy:");
    assert_eq!(block, settings[..block.len()]);
    assert!(settings[block.len()..].iter().all(|l| l.is_empty()));

    // The conffile is the sample, commented out: installing the package changes nothing.
    for line in conffile.lines() {
        assert!(line.is_empty() || line.starts_with('#'), "{line}");
    }
    for line in settings.iter().filter(|l| !l.is_empty()) {
        assert!(
            conffile.lines().any(|c| c == format!("#{line}")),
            "the conffile lacks #{line}"
        );
    }

    // Where the package puts things, and what the route and the units call.
    assert_eq!(
        dest_of("target/release/opsi-backup"),
        "/usr/bin/opsi-backup"
    );
    assert_eq!(
        dest_of("contrib/opsi-backup.toml"),
        "/usr/share/doc/opsi-backup/examples/opsi-backup.toml"
    );
    assert_eq!(
        dest_of("contrib/deb/opsi-backup.toml"),
        "/etc/opsi/opsi-backup.toml"
    );
    assert_eq!(
        dest_of("contrib/cron/opsi-backup"),
        "/etc/cron.d/opsi-backup"
    );
    assert_eq!(
        dest_of("contrib/logrotate/opsi-backup"),
        "/etc/logrotate.d/opsi-backup"
    );
    assert_eq!(
        dest_of("contrib/systemd/opsi-backup.service"),
        "/usr/lib/systemd/system/opsi-backup.service"
    );
    assert_eq!(
        dest_of("contrib/systemd/opsi-backup.timer"),
        "/usr/lib/systemd/system/opsi-backup.timer"
    );
    for (src, _) in deb_assets() {
        if !src.starts_with("target/") {
            assert!(manifest_dir().join(&src).is_file(), "{src}");
        }
    }
    assert!(readme.contains(
        "cp /usr/share/doc/opsi-backup/examples/opsi-backup.toml /etc/opsi/opsi-backup.toml"
    ));

    let service = read("contrib/systemd/opsi-backup.service");
    let exec: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(
        exec,
        [
            "/usr/bin/opsi-backup create",
            "/usr/bin/opsi-backup forget --prune"
        ]
    );
    assert!(readme.contains(
        "runs `/usr/bin/opsi-backup create`, then `/usr/bin/opsi-backup forget --prune`"
    ));
    // The route without the package rewrites exactly that path for `cargo install --root /usr/local`.
    assert!(readme.contains("cargo install --path . --root /usr/local"));
    assert!(readme.contains(
        "sed 's|/usr/bin/opsi-backup|/usr/local/bin/opsi-backup|' contrib/systemd/opsi-backup.service"
    ));

    // The package's changelog names the version cargo deb gives it.
    let changelog = read("contrib/deb/changelog");
    assert!(
        changelog.starts_with(&format!("opsi-backup ({}-1) ", env!("CARGO_PKG_VERSION"))),
        "{changelog}"
    );

    // The cron file: disabled, the same two commands, a PATH holding both places.
    let cron = read("contrib/cron/opsi-backup");
    let job: Vec<&str> = cron.lines().filter(|l| l.contains(" root ")).collect();
    assert_eq!(
        job,
        ["#0 3 * * * root umask 077 && opsi-backup create && opsi-backup forget --prune"]
    );
    assert!(cron
        .lines()
        .all(|l| l.starts_with('#') || l.starts_with("SHELL=") || l.starts_with("PATH=")));
    let path = cron.lines().find_map(|l| l.strip_prefix("PATH=")).unwrap();
    assert!(path.split(':').any(|d| d == "/usr/bin"));
    assert!(path.split(':').any(|d| d == "/usr/local/bin"));

    // The log file logrotate rotates is the one the program writes by default.
    let logrotate = read("contrib/logrotate/opsi-backup");
    assert!(logrotate.contains("/var/log/opsi/opsi-backup.log {"));
    assert!(readme.contains("`--log-file FILE` (default /var/log/opsi/opsi-backup.log;"));
    assert!(read("src/cli/mod.rs").contains("\"/var/log/opsi/opsi-backup.log\""));
}
