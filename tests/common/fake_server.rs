//! A realistic fake opsi server under a temp root: /etc/opsi with backend configs in their
//! real-world shapes, dispatch.conf, pckeys, SSL files and a relative symlink; the file
//! backend under /var/lib/opsi/config with hundreds of clients, products, audit files (one
//! over 10 MiB), a name with spaces and umlauts, an empty file and nested dirs; dhcpd.conf.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random numbers (xorshift), so every run builds the same server.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) struct FakeServer {
    pub dir: tempfile::TempDir,
}

pub(crate) const SERVER: &str = "opsiserver.example.org";

pub(crate) fn write(path: &Path, data: impl AsRef<[u8]>, mode: u32, mtime: i64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, mtime, 123_456_789);
}

pub(crate) fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

const FILE_CONF: &str = r#"# -*- coding: utf-8 -*-

module = 'File'
config = {
    "baseDir":     u"/var/lib/opsi/config",
    "hostKeyFile": u"/etc/opsi/pckeys",
}
"#;

const MYSQL_CONF: &str = r#"# -*- coding: utf-8 -*-

module = 'MySQL'
config = {
    "address":                   u"localhost",
    "database":                  u"opsi",
    "username":                  u"opsi",
    "password":                  u"s3cr3t'pw",
    "databaseCharset":           "utf8",
    "connectionPoolSize":        20,
    "connectionPoolMaxOverflow": 10,
    "connectionPoolTimeout":     30,
}
"#;

const DHCPD_CONF: &str = r#"# -*- coding: utf-8 -*-
import socket

module = 'DHCPD'

localip = socket.gethostbyname(socket.getfqdn())

config = {
    "dhcpdOnDepot":            False,
    "dhcpdConfigFile":         u"/etc/dhcp/dhcpd.conf",
    "reloadConfigCommand":     u"sudo service isc-dhcp-server restart",
    "fixedAddressFormat":      u"IP", # or FQDN
    "defaultClientParameters": { "next-server": localip, "filename": u"linux/pxelinux.0" }
}
"#;

const PXE_CONF: &str = r#"module = 'OpsiPXEConfd'
config = {
    "port":                 u"/var/run/opsipxeconfd/opsipxeconfd.socket",
    "timeout":              10.0
}
"#;

const DISPATCH: &str = r#"# -*- coding: utf-8 -*-
# = = = = = = = = = = = = = = = = = = = = = = =
# =      backend dispatch configuration     =
# = = = = = = = = = = = = = = = = = = = = = = =
;
backend_.*         : file, opsipxeconfd, dhcpd
host_.*            : file, opsipxeconfd, dhcpd
productOnClient_.* : file, opsipxeconfd
configState_.*     : file, opsipxeconfd
.*                 : file
"#;

impl FakeServer {
    /// A server with `clients` clients; `big` adds an audit file over 10 MiB.
    pub(crate) fn new(clients: usize, big: bool) -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        let s = FakeServer { dir };
        s.build(clients, big);
        s
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn p(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }

    fn build(&self, clients: usize, big: bool) {
        let mut rng = Rng::new(clients as u64 + 7);
        let t0 = 1_732_000_000i64;
        let etc = self.p("/etc/opsi");
        write(&etc.join("backends/file.conf"), FILE_CONF, 0o644, t0);
        write(&etc.join("backends/mysql.conf"), MYSQL_CONF, 0o600, t0);
        write(&etc.join("backends/dhcpd.conf"), DHCPD_CONF, 0o644, t0);
        write(&etc.join("backends/opsipxeconfd.conf"), PXE_CONF, 0o644, t0);
        write(
            &etc.join("backendManager/dispatch.conf"),
            DISPATCH,
            0o644,
            t0,
        );
        write(
            &etc.join("backendManager/acl.conf"),
            ".*: sys_group(opsiadmin); opsi_depotserver\n",
            0o644,
            t0,
        );
        write(
            &etc.join("backendManager/extend.d/10_opsi.conf"),
            "def getClients(self):\n    return []\n",
            0o644,
            t0,
        );
        write(
            &etc.join("opsi.conf"),
            "[groups]\nfileadmingroup = pcpatch\n",
            0o644,
            t0,
        );
        write(
            &etc.join("opsiconfd.conf"),
            "networks = [0.0.0.0/0]\n",
            0o644,
            t0,
        );
        write(
            &etc.join("ssl/opsiconfd.pem"),
            "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n",
            0o600,
            t0,
        );
        write(
            &etc.join("Notizen für Admins.txt"),
            "Backups laufen nächtlich um 03:00.\n",
            0o644,
            t0,
        );
        write(&etc.join("hwaudit/empty.conf"), "", 0o644, t0);
        fs::create_dir_all(etc.join("package-updater.repos.d/empty")).unwrap();
        std::os::unix::fs::symlink("ssl/opsiconfd.pem", etc.join("opsiconfd.pem")).unwrap();
        let mut pckeys = String::new();
        for i in 0..clients {
            pckeys.push_str(&format!(
                "client{i:04}.example.org:{:032x}\n",
                rng.next() as u128 * 7919
            ));
        }
        write(&etc.join("pckeys"), &pckeys, 0o640, t0);
        write(
            &self.p("/etc/dhcp/dhcpd.conf"),
            "ddns-update-style none;\nsubnet 10.0.0.0 netmask 255.255.0.0 {}\n",
            0o644,
            t0,
        );

        let cfg = self.p("/var/lib/opsi/config");
        let products = [
            "firefox",
            "7zip",
            "opsi-client-agent",
            "win10-x64",
            "libreoffice",
            "hwaudit",
            "swaudit",
        ];
        for (i, p) in products.iter().enumerate() {
            let body = format!("[Product]\nid = {p}\nversion = 1.{i}\n[ProductProperty_0]\ntype = UnicodeProductProperty\nname = lang\n");
            write(
                &cfg.join(format!("products/{p}_1.{i}-1.localboot")),
                body,
                0o660,
                t0 + i as i64,
            );
        }
        let depot = format!(
            "[{SERVER}]\ndepotlocalurl = file:///var/lib/opsi/depot\ndepotremoteurl = smb://opsiserver/opsi_depot\n"
        );
        write(&cfg.join(format!("depots/{SERVER}.ini")), depot, 0o660, t0);
        write(
            &cfg.join("config.ini"),
            format!("[clientconfig.depot.id]\ndefaultvalues = [\"{SERVER}\"]\n"),
            0o660,
            t0,
        );
        write(&cfg.join("clientgroups.ini"), "[group_all]\n", 0o660, t0);
        write(&cfg.join("productgroups.ini"), "", 0o660, t0);
        write(
            &cfg.join("templates/pcproto.ini"),
            "[info]\ndescription = \n",
            0o660,
            t0,
        );
        write(
            &cfg.join("audit/Geräteübersicht 2024.ini"),
            "[gerät]\nname = Drucker\n",
            0o660,
            t0,
        );
        fs::create_dir_all(cfg.join("audit/old/archive")).unwrap();
        for i in 0..clients {
            let id = format!("client{i:04}.example.org");
            let mut ini = format!("[info]\ndescription = Client {i}\nnotes = \nhardwareaddress = 00:11:22:{:02x}:{:02x}:{:02x}\n", i >> 8, i & 255, rng.below(256));
            ini.push_str(&format!("[{SERVER}]\n[localboot_product_states]\n"));
            for p in &products {
                ini.push_str(&format!("{p} = installed:none\n"));
            }
            write(
                &cfg.join(format!("clients/{id}.ini")),
                &ini,
                0o660,
                t0 + rng.below(100000) as i64,
            );
            let mut hw = String::new();
            for d in 0..40 {
                hw.push_str(&format!(
                    "[DEVICE_{d}]\nvendor = Vendor{}\nmodel = Model {}\n",
                    rng.below(50),
                    rng.below(1000)
                ));
            }
            write(&cfg.join(format!("audit/{id}.hw")), hw, 0o660, t0);
            let mut sw = String::new();
            for n in 0..60 {
                sw.push_str(&format!(
                    "[SOFTWARE_{n}]\nname = Package {}\nversion = {}.{}\n",
                    rng.below(300),
                    rng.below(10),
                    rng.below(100)
                ));
            }
            write(&cfg.join(format!("audit/{id}.sw")), sw, 0o660, t0);
        }
        if big {
            let mut data = Vec::with_capacity(11 << 20);
            while data.len() < (10 << 20) + 4321 {
                data.extend_from_slice(
                    format!(
                        "[SOFTWARE_{}]\nname = Big Package {}\n",
                        data.len(),
                        rng.next()
                    )
                    .as_bytes(),
                );
            }
            write(&cfg.join("audit/bigclient.example.org.sw"), data, 0o660, t0);
        }
        // A file owned by another user and group, to check owners survive.
        let notes = cfg.join("clientgroups.ini");
        nix::unistd::chown(
            &notes,
            Some(nix::unistd::Uid::from_raw(1)),
            Some(nix::unistd::Gid::from_raw(1)),
        )
        .unwrap();
        // Directory mtimes last: creating entries changes them.
        for d in walkdir::WalkDir::new(self.root()).contents_first(true) {
            let d = d.unwrap();
            if d.file_type().is_dir() {
                set_mtime(d.path(), t0 + 500, 0);
            }
        }
    }
}
