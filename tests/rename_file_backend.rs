//! `opsi_backup::rename` on a fake file backend: the config server's id in every place the
//! file backend keeps host ids (see `src/rename/mod.rs`), a pre-existing host with the new id,
//! and hosts whose names merely contain the old id. After the rename the tree must be exactly
//! the expected one.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use opsi_backup::error::Error;
use opsi_backup::rename::file_backend::find_config_server;
use opsi_backup::rename::{
    rename_in_file_backend, rename_in_file_backend_with, validate_server_id, FileRenameOptions,
};

const OLD: &str = "opsi.example.org";
const NEW: &str = "newsrv.test.lan";

/// Hosts whose names contain OLD without being OLD: they must stay as they are.
const LOOKALIKES: &[&str] = &[
    "pc.opsi.example.org",
    "opsi.example.org.au",
    "xopsi.example.org",
];

const CONFIG_DEPOT: &str = "\
[depotserver]
description = Config server
notes = moved from opsi.example.org in 2020
hardwareaddress = 00:11:22:33:44:55
ipaddress = 192.168.1.1
network = 192.168.1.0/24
ismasterdepot = true

[depotshare]
localurl = file:///var/lib/opsi/depot
remoteurl = smb://opsi/opsi_depot
webdavurl = webdavs://opsi.example.org:4447/depot

[repository]
localurl = file:///var/lib/opsi/repository
remoteurl = webdavs://OPSI.example.org:4447/repository
maxbandwidth = 0

[workbench]
localurl = file:///var/lib/opsi/workbench
remoteurl = smb://opsi/opsi_workbench

[firefox-state]
producttype = LocalbootProduct
productversion = 115.0
packageversion = 1
locked = False

[generalconfig]
clientconfig.depot.id = [\"opsi.example.org\"]

[firefox-install]
homepage = [\"https://opsi.example.org/start\"]
";

const CONFIG_DEPOT_AFTER: &str = "\
[depotserver]
description = Config server
notes = moved from newsrv.test.lan in 2020
hardwareaddress = 00:11:22:33:44:55
ipaddress = 192.168.1.1
network = 192.168.1.0/24
ismasterdepot = true

[depotshare]
localurl = file:///var/lib/opsi/depot
remoteurl = smb://newsrv/opsi_depot
webdavurl = webdavs://newsrv.test.lan:4447/depot

[repository]
localurl = file:///var/lib/opsi/repository
remoteurl = webdavs://newsrv.test.lan:4447/repository
maxbandwidth = 0

[workbench]
localurl = file:///var/lib/opsi/workbench
remoteurl = smb://newsrv/opsi_workbench

[firefox-state]
producttype = LocalbootProduct
productversion = 115.0
packageversion = 1
locked = False

[generalconfig]
clientconfig.depot.id = [\"newsrv.test.lan\"]

[firefox-install]
homepage = [\"https://newsrv.test.lan/start\"]
";

const DEPOT2: &str = "\
[depotserver]
description = Branch office
ismasterdepot = false
masterdepotid = opsi.example.org

[depotshare]
localurl = file:///var/lib/opsi/depot
remoteurl = smb://depot2/opsi_depot

[7zip-state]
producttype = LocalbootProduct
productversion = 23.01
packageversion = 2
locked = False
";

const STALE_NEW_DEPOT: &str = "\
[depotserver]
description = stale test server

[depotshare]
remoteurl = smb://newsrv/opsi_depot

[7zip-state]
producttype = LocalbootProduct
productversion = 19.0
packageversion = 1
locked = False
";

fn client(depot: &str, description: &str) -> String {
    format!(
        "[info]
description = {description}
hardwareaddress = 00:aa:bb:cc:dd:ee
created = 2024-01-02 03:04:05

[generalconfig]
clientconfig.depot.id = [\"{depot}\"]
clientconfig.configserver.url = [\"https://{OLD}:4447/rpc\"]

[localboot_product_states]
firefox = installed:none

[firefox-state]
producttype = LocalbootProduct
productversion = 115.0
packageversion = 1
modificationtime = 2024-01-02 03:04:05

[firefox-install]
homepage = [\"https://{depot}/start\"]
"
    )
}

const CONFIG_INI: &str = "\
[clientconfig.depot.id]
type = UnicodeConfig
description = ID of the opsi depot to use
editable = True
multivalue = False
possiblevalues = [\"opsi.example.org\", \"depot2.example.org\", \"newsrv.test.lan\"]
defaultvalues = [\"opsi.example.org\"]

[clientconfig.configserver.url]
type = UnicodeConfig
description = URL(s) of opsi config service(s) to use
editable = True
multivalue = True
possiblevalues = [\"https://opsi.example.org:4447/rpc\"]
defaultvalues = [\"https://opsi.example.org:4447/rpc\"]

[opsi-linux-bootimage.append]
type = UnicodeConfig
editable = True
multivalue = True
possiblevalues = [\"acpi=off\", \"nomodeset\"]
defaultvalues = [\"\"]

[clientconfig.dhcpd.filename]
type = UnicodeConfig
editable = True
multivalue = False
possiblevalues = [\"linux/pxelinux.0\"]
defaultvalues = [\"linux/pxelinux.0\"]
";

const CONFIG_INI_AFTER: &str = "\
[clientconfig.depot.id]
type = UnicodeConfig
description = ID of the opsi depot to use
editable = True
multivalue = False
possiblevalues = [\"newsrv.test.lan\", \"depot2.example.org\"]
defaultvalues = [\"newsrv.test.lan\"]

[clientconfig.configserver.url]
type = UnicodeConfig
description = URL(s) of opsi config service(s) to use
editable = True
multivalue = True
possiblevalues = [\"https://newsrv.test.lan:4447/rpc\"]
defaultvalues = [\"https://newsrv.test.lan:4447/rpc\"]

[opsi-linux-bootimage.append]
type = UnicodeConfig
editable = True
multivalue = True
possiblevalues = [\"acpi=off\", \"nomodeset\"]
defaultvalues = [\"\"]

[clientconfig.dhcpd.filename]
type = UnicodeConfig
editable = True
multivalue = False
possiblevalues = [\"linux/pxelinux.0\"]
defaultvalues = [\"linux/pxelinux.0\"]
";

const CONTROL: &str = "\
[Package]
version: 1
depends:

[Product]
type: localboot
id: firefox
name: Mozilla Firefox
version: 115.0

[ProductProperty]
type: unicode
name: homepage
multivalue: False
editable: True
values: [\"https://opsi.example.org/start\", \"https://www.mozilla.org\"]
default: [\"https://opsi.example.org/start\"]
";

/// (relative path, content before, content after or None when removed/renamed away).
fn fixture() -> Vec<(String, String, Option<String>)> {
    let same = |p: &str, c: &str| (p.to_string(), c.to_string(), Some(c.to_string()));
    let mut files = vec![
        (
            format!("depots/{OLD}.ini"),
            CONFIG_DEPOT.to_string(),
            None,
        ),
        (
            "depots/depot2.example.org.ini".into(),
            DEPOT2.into(),
            Some(DEPOT2.replace("masterdepotid = opsi.example.org", &format!("masterdepotid = {NEW}"))),
        ),
        (format!("depots/{NEW}.ini"), STALE_NEW_DEPOT.into(), Some(CONFIG_DEPOT_AFTER.into())),
        (
            "clients/pc1.example.org.ini".into(),
            client(OLD, "assigned to OPSI.example.org"),
            Some(
                client(NEW, "assigned to newsrv.test.lan")
                    .replace(&format!("https://{OLD}:4447"), &format!("https://{NEW}:4447")),
            ),
        ),
        (
            "clients/pc2.example.org.ini".into(),
            client(NEW, "on the test server's depot"),
            Some(client(NEW, "on the test server's depot").replace(
                &format!("https://{OLD}:4447"),
                &format!("https://{NEW}:4447"),
            )),
        ),
        (
            "config.ini".into(),
            CONFIG_INI.into(),
            Some(CONFIG_INI_AFTER.into()),
        ),
        (
            "clientgroups.ini".into(),
            format!(
                "[servers]\ndescription = \nparentgroupid = \n{OLD} = 1\n{NEW} = 1\npc1.example.org = 1\n\n\
                 [lab]\ndescription = \nOPSI.EXAMPLE.ORG=1\npc.opsi.example.org = 1\n"
            ),
            Some(format!(
                "[servers]\ndescription = \nparentgroupid = \n{NEW} = 1\npc1.example.org = 1\n\n\
                 [lab]\ndescription = \n{NEW}=1\npc.opsi.example.org = 1\n"
            )),
        ),
        same("productgroups.ini", "[browsers]\ndescription = \nfirefox = 1\n"),
        (
            format!("audit/{OLD}.hw"),
            "[COMPUTER_SYSTEM_0]\nname = opsi\nhostid = opsi.example.org\n".into(),
            None,
        ),
        (
            format!("audit/{NEW}.hw"),
            "[COMPUTER_SYSTEM_0]\nname = stale\n".into(),
            Some("[COMPUTER_SYSTEM_0]\nname = opsi\nhostid = newsrv.test.lan\n".into()),
        ),
        same("audit/pc1.example.org.sw", "[SOFTWARE_0]\nname = Firefox\n"),
        (
            "templates/pcproto.ini".into(),
            "[generalconfig]\nclientconfig.depot.id = [\"OPSI.Example.org\"]\n".into(),
            Some(format!("[generalconfig]\nclientconfig.depot.id = [\"{NEW}\"]\n")),
        ),
        (
            "products/firefox_115.0-1.localboot".into(),
            CONTROL.into(),
            Some(CONTROL.replace(OLD, NEW)),
        ),
        // no trailing newline, non-ASCII text around the id
        (
            "clients/notes.txt".into(),
            "caf\u{e9} \u{fffd} opsi.example.org".into(),
            Some(format!("caf\u{e9} \u{fffd} {NEW}")),
        ),
    ];
    for name in LOOKALIKES {
        let c = client(
            "depot2.example.org",
            &format!("{name} is not the config server"),
        )
        .replace(
            &format!("https://{OLD}:4447"),
            "https://depot2.example.org:4447",
        );
        files.push(same(&format!("clients/{name}.ini"), &c));
    }
    files
}

fn write_fixture(base: &Path) {
    for (path, content, _) in fixture() {
        let p = base.join(&path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o660)).unwrap();
    }
}

fn read_tree(base: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(base)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                rel,
                String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned(),
            )
        })
        .collect()
}

fn expected_tree() -> BTreeMap<String, String> {
    fixture()
        .into_iter()
        .filter_map(|(p, _, after)| after.map(|a| (p, a)))
        .collect()
}

fn host_keys(dir: &Path) -> std::path::PathBuf {
    let keys = dir.join("pckeys");
    fs::write(
        &keys,
        format!(
            "{OLD}:0123456789abcdef0123456789abcdef\n{NEW}:ffffffffffffffffffffffffffffffff\n\
             pc1.example.org:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\npc.opsi.example.org:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o640)).unwrap();
    keys
}

/// Text with the look-alike names blanked out, lower-cased.
fn without_lookalikes(text: &str) -> String {
    let mut t = text.to_lowercase();
    for l in LOOKALIKES {
        t = t.replace(l, "#");
    }
    t
}

#[test]
fn renames_every_reference_and_removes_the_existing_host() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("config");
    write_fixture(&base);
    let keys = host_keys(dir.path());
    let options = FileRenameOptions {
        host_key_file: Some(keys.clone()),
        local_fqdn: None,
    };

    let report =
        rename_in_file_backend_with(&base, Some("OPSI.example.org"), "NewSrv.Test.Lan", &options)
            .unwrap();

    assert_eq!(report.old_id, OLD);
    assert_eq!(report.new_id, NEW);
    assert!(report.removed_existing_host);
    assert_eq!(report.files_removed, 2, "{report:?}"); // depots/NEW.ini, audit/NEW.hw
    assert_eq!(report.lines_removed, 2, "{report:?}"); // group membership, host key
    assert_eq!(report.files_renamed, 2, "{report:?}"); // depots/OLD.ini, audit/OLD.hw
    assert_eq!(report.files_rewritten, 9, "{report:?}"); // 8 in baseDir + the host key file

    let actual = read_tree(&base);
    let expected = expected_tree();
    for (path, content) in &expected {
        assert_eq!(actual.get(path), Some(content), "{path}");
    }
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, content) in &actual {
        assert!(!without_lookalikes(path).contains(OLD), "{path}");
        assert!(
            !without_lookalikes(content).contains(OLD),
            "{path}: {content}"
        );
    }

    assert_eq!(
        fs::read_to_string(&keys).unwrap(),
        format!(
            "{NEW}:0123456789abcdef0123456789abcdef\npc1.example.org:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
             pc.opsi.example.org:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
        )
    );
    assert_eq!(fs::metadata(&keys).unwrap().mode() & 0o7777, 0o640);
    for path in [
        "config.ini",
        "depots/newsrv.test.lan.ini",
        "clientgroups.ini",
    ] {
        let meta = fs::metadata(base.join(path)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o660, "{path}");
    }
    // no temporary files left behind
    assert!(actual.keys().all(|p| !p.contains(".opsi-backup-rename.")));

    // A second run finds nothing left to rename.
    let again = rename_in_file_backend_with(&base, Some(NEW), NEW, &options).unwrap();
    assert!(!again.changed());
    assert_eq!(read_tree(&base), expected);
}

#[test]
fn finds_the_config_server_from_the_configserver_url() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("config");
    write_fixture(&base);
    let report = rename_in_file_backend(&base, None, NEW).unwrap();
    assert_eq!(report.old_id, OLD);
    let actual = read_tree(&base);
    assert_eq!(actual[&format!("depots/{NEW}.ini")], CONFIG_DEPOT_AFTER);
    assert_eq!(actual["config.ini"], CONFIG_INI_AFTER);
}

#[test]
fn config_server_choice() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let depots = vec!["a.example.org".to_string(), "b.example.org".to_string()];
    // python-opsi's rule: the depot named like this machine
    assert_eq!(
        find_config_server(base, &depots, Some("B.example.org"), NEW).unwrap(),
        "b.example.org"
    );
    // neither the FQDN nor config.ini tell, and there are two depots
    let err = find_config_server(base, &depots, Some("other.example.org"), NEW).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("a.example.org, b.example.org"),
        "{err}"
    );
    // the only depot
    assert_eq!(
        find_config_server(base, &depots[..1], None, NEW).unwrap(),
        "a.example.org"
    );
}

#[test]
fn refuses_bad_ids_and_unknown_depots_without_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("config");
    write_fixture(&base);
    let before = read_tree(&base);
    for bad in [
        "newsrv",
        "newsrv.lan",
        "new_srv.test.lan",
        "new srv.test.lan",
        "",
    ] {
        let err = rename_in_file_backend(&base, Some(OLD), bad).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad}: {err}");
        assert!(validate_server_id(bad).is_err());
    }
    let err = rename_in_file_backend(&base, Some("pc1.example.org"), NEW).unwrap_err();
    assert!(
        err.to_string().contains("no depot pc1.example.org"),
        "{err}"
    );
    assert_eq!(read_tree(&base), before);

    // renaming to the current id changes nothing
    let report = rename_in_file_backend(&base, Some(OLD), OLD).unwrap();
    assert!(!report.changed());
    assert_eq!(read_tree(&base), before);
}
