//! The generated opsi server: /etc/opsi, the file backend under /var/lib/opsi/config and
//! dhcpd.conf under a root directory, deterministic from a seed. Client ids, product ids and
//! depot ids are those of `mysql_schema`, so the file tree and the database describe the same
//! clients.
//!
//! Shapes (per client): clients/<fqdn>.ini 15-18 KB, audit/<fqdn>.hw 16-19 KB,
//! audit/<fqdn>.sw 20-44 KB; ~200 product files; a few shared .ini files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::mysql_schema::{client_id, Rng};

/// When the generated server was last touched; a night `v` is `v` days later.
pub(crate) const T0: i64 = 1_735_700_000;
pub(crate) const SERVER: &str = "config.domain.example";
const DEPOTS: usize = 4;
const PRODUCTS: usize = 180;
const NETBOOT: usize = 20;

pub(crate) struct Tree {
    pub root: PathBuf,
    pub seed: u64,
}

fn mix(seed: u64, s: &str) -> u64 {
    let h = blake3::hash(s.as_bytes());
    seed ^ u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap())
}

fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn mac(r: &mut Rng) -> String {
    (0..6)
        .map(|_| format!("{:02x}", r.below(256)))
        .collect::<Vec<_>>()
        .join(":")
}

const WORDS: &[&str] = &[
    "Installation",
    "Paket",
    "Aktualisierung",
    "Größe",
    "Übersicht",
    "driver",
    "service",
    "runtime",
    "agent",
    "update",
    "Konfiguration",
    "Benutzer",
    "Drucker",
    "Netzwerk",
    "silent",
    "reboot",
    "Lizenz",
    "Zürich",
    "Straße",
    "fixed",
    "security",
    "release",
    "Windows",
    "x64",
];

fn words(r: &mut Rng, n: usize) -> String {
    (0..n).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

pub(crate) fn product_id(p: usize) -> String {
    format!("product-{p:03}")
}

fn depot_id(d: usize) -> String {
    format!("depot-{d:02}.domain.example")
}

/// Writes `data` to `root/rel` with mtime `mtime` and mode 0660.
pub(crate) fn put(root: &Path, rel: &str, data: &[u8], mtime: i64) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(&p, data)?;
    let f = fs::File::options().write(true).open(&p)?;
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64))?;
    f.set_permissions(fs::Permissions::from_mode(0o660))
}

const HW_CLASSES: &[(&str, usize, &[&str])] = &[
    (
        "COMPUTER_SYSTEM",
        1,
        &[
            "name",
            "description",
            "vendor",
            "model",
            "serialNumber",
            "systemType",
            "totalPhysicalMemory",
            "dellexpresscode",
        ],
    ),
    (
        "BASE_BOARD",
        1,
        &["name", "description", "vendor", "product", "serialNumber"],
    ),
    (
        "BIOS",
        1,
        &[
            "name",
            "description",
            "vendor",
            "model",
            "version",
            "serialNumber",
        ],
    ),
    (
        "SYSTEM_SLOT",
        4,
        &["name", "description", "vendor", "currentUsage", "status"],
    ),
    (
        "PORT_CONNECTOR",
        6,
        &[
            "name",
            "description",
            "connectorType",
            "internalDesignator",
            "externalDesignator",
        ],
    ),
    (
        "PROCESSOR",
        1,
        &[
            "name",
            "description",
            "vendor",
            "model",
            "architecture",
            "maxClockSpeed",
            "addressWidth",
            "socketDesignation",
            "NumberOfCores",
        ],
    ),
    (
        "MEMORY_MODULE",
        4,
        &[
            "name",
            "description",
            "vendor",
            "deviceLocator",
            "capacity",
            "formFactor",
            "speed",
            "serialNumber",
        ],
    ),
    (
        "CACHE_MEMORY",
        3,
        &["name", "description", "installedSize", "maxSize", "level"],
    ),
    (
        "PCI_DEVICE",
        7,
        &[
            "name",
            "description",
            "vendor",
            "vendorId",
            "deviceId",
            "busId",
        ],
    ),
    (
        "HARDDISK_DRIVE",
        2,
        &[
            "name",
            "description",
            "vendor",
            "model",
            "size",
            "serialNumber",
            "partitions",
        ],
    ),
    (
        "DISK_PARTITION",
        4,
        &["name", "description", "size", "startingOffset", "index"],
    ),
    (
        "NETWORK_CONTROLLER",
        2,
        &[
            "name",
            "description",
            "vendor",
            "macAddress",
            "ipAddress",
            "adapterType",
            "maxSpeed",
            "netConnectionStatus",
        ],
    ),
    (
        "USB_DEVICE",
        3,
        &[
            "name",
            "description",
            "vendor",
            "vendorId",
            "deviceId",
            "status",
        ],
    ),
    (
        "VIDEO_CONTROLLER",
        1,
        &[
            "name",
            "description",
            "vendor",
            "videoProcessor",
            "adapterRAM",
            "driverVersion",
        ],
    ),
    (
        "MONITOR",
        2,
        &[
            "name",
            "description",
            "vendor",
            "screenWidth",
            "screenHeight",
        ],
    ),
    ("SOUND_DEVICE", 1, &["name", "description", "vendor"]),
    (
        "TPM",
        1,
        &["name", "description", "specVersion", "manufacturerVersion"],
    ),
];

/// One client's three files at check-in `v` (0 = as generated).
pub(crate) fn client_files(seed: u64, id: &str, v: u32) -> (String, String, String) {
    let base = mix(seed, id);
    let mut r = Rng::new(base);
    let mut c = Rng::new(base ^ (u64::from(v) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let now = T0 + i64::from(v) * 86_400;
    let seen = |c: &mut Rng| ts(now - 3_600 - c.below(40_000) as i64);
    let created = T0 - 30_000_000 + r.below(20_000_000) as i64;

    // clients/<fqdn>.ini
    let mut ini = format!(
        "[info]\ndescription = Arbeitsplatz {}\nnotes = {}\nhardwareaddress = {}\nipaddress = 10.{}.{}.{}\ninventorynumber = INV-{:05}\ncreated = {}\nlastseen = {}\nonetimepassword = \nuefi = {}\n\n",
        words(&mut r, 2),
        words(&mut r, 4),
        mac(&mut r),
        r.below(256),
        r.below(256),
        r.below(256),
        r.below(100_000),
        ts(created),
        seen(&mut c),
        r.chance(50)
    );
    let n = 40 + r.below(8);
    let first = r.below(PRODUCTS);
    let step = 1 + r.below(3);
    let products: Vec<usize> = (0..n).map(|k| (first + k * step) % PRODUCTS).collect();
    ini.push_str("[localboot_product_states]\n");
    let mut states = Vec::new();
    for &p in &products {
        let installed = r.chance(85);
        let st = if installed {
            "installed"
        } else {
            "not_installed"
        };
        ini.push_str(&format!("{} = {st}:none\n", product_id(p)));
        states.push((p, st));
    }
    ini.push_str("\n[netboot_product_states]\nwin10-x64 = installed:none\n\n");
    for (p, st) in states {
        let mut mtime = created + r.below(20_000_000) as i64;
        let mut result = r.pick(&["successful", "successful", "failed", "none"]);
        // A check-in touches some product states.
        if v > 0 && c.chance(15) {
            mtime = now - c.below(20_000) as i64;
            result = "successful";
        }
        ini.push_str(&format!(
            "[{}-state]\nproducttype = LocalbootProduct\nactionprogress = {}\nproductversion = {}.0\npackageversion = {}\nmodificationtime = {}\nlastaction = setup\nactionresult = {result}\ntargetconfiguration = installed\ninstallationstatus = {st}\nactionrequest = none\nactionsequence = -1\nlastStateChange = {}\n\n",
            product_id(p),
            words(&mut r, 1),
            p % 9,
            p % 5 + 1,
            ts(mtime),
            ts(mtime),
        ));
    }

    // audit/<fqdn>.hw: the model's device list, this client's serials, lastseen per check-in.
    let model = r.below(40);
    let mut m = Rng::new(seed ^ 0xABCD ^ model as u64);
    let mut hw = String::new();
    for (class, count, keys) in HW_CLASSES {
        let count = count + m.below(3);
        for i in 0..count {
            hw.push_str(&format!("[{class}_{i}]\nhardwareClass = {class}\n"));
            for key in *keys {
                let value = match *key {
                    "serialNumber" => format!("{:016X}", r.next()),
                    "macAddress" => mac(&mut r),
                    "ipAddress" => format!("10.1.{}.{}", r.below(256), r.below(256)),
                    _ => format!("{} {}", words(&mut m, 2), m.below(1000)),
                };
                hw.push_str(&format!("{key} = {value}\n"));
            }
            hw.push_str(&format!(
                "firstseen = {}\nlastseen = {}\nstate = 1\n\n",
                ts(created),
                seen(&mut c)
            ));
        }
    }

    // audit/<fqdn>.sw: software from a shared pool; a check-in may add an entry in the middle.
    let count = 50 + r.below(60);
    let mut pool: Vec<usize> = (0..count).map(|_| r.below(600)).collect();
    if v > 0 && c.chance(50) {
        let at = c.below(pool.len());
        pool.insert(at, 600 + c.below(50));
    }
    let mut sw = String::new();
    for (i, s) in pool.iter().enumerate() {
        let mut q = Rng::new(seed ^ 0x5157 ^ *s as u64);
        let name = format!("{} {s}", words(&mut q, 2));
        sw.push_str(&format!(
            "[SOFTWARE_{i}]\nname = {name}\nversion = {}.{}.{}\nsubversion = \nlanguage = {}\narchitecture = x64\nuninstallstring = \"C:\\Program Files\\{name}\\uninstall.exe\" /S\nbinaryname = {}.exe\nfirstseen = {}\nlastseen = {}\nstate = 1\nusagefrequency = -1\nlastused = {}\nlicensekey = \nwindowssoftwareid = {{{:08X}-{:04X}}}\n\n",
            q.below(20),
            q.below(10),
            q.below(1000),
            q.pick(&["de-DE", "en-US", ""]),
            name.replace(' ', "_"),
            ts(created + r.below(1_000_000) as i64),
            seen(&mut c),
            ts(created + r.below(10_000_000) as i64),
            q.next() as u32,
            q.next() as u16,
        ));
    }
    (ini, hw, sw)
}

impl Tree {
    pub(crate) fn config_dir(&self) -> PathBuf {
        self.root.join("var/lib/opsi/config")
    }

    /// The paths a peer backs up: what opsi-backup takes from the root.
    pub(crate) fn peer_paths(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("etc/opsi"),
            self.config_dir(),
            self.root.join("etc/dhcp/dhcpd.conf"),
        ]
    }

    /// Writes one client's files as at check-in `v`.
    pub(crate) fn write_client(&self, id: &str, v: u32) -> io::Result<()> {
        let (ini, hw, sw) = client_files(self.seed, id, v);
        let cfg = self.config_dir();
        let t = T0 + i64::from(v) * 86_400 - 600;
        put(&cfg, &format!("clients/{id}.ini"), ini.as_bytes(), t)?;
        put(&cfg, &format!("audit/{id}.hw"), hw.as_bytes(), t)?;
        put(&cfg, &format!("audit/{id}.sw"), sw.as_bytes(), t)
    }

    /// The whole server for `clients` clients.
    pub(crate) fn generate(&self, clients: usize, mysql_conf: &str) -> io::Result<()> {
        let mut r = Rng::new(self.seed ^ 0x0e7c);
        let etc = self.root.join("etc/opsi");
        let t = T0 - 5_000_000;
        let file_conf = "# -*- coding: utf-8 -*-\n\nmodule = 'File'\nconfig = {\n    \"baseDir\":     u\"/var/lib/opsi/config\",\n    \"hostKeyFile\": u\"/etc/opsi/pckeys\",\n}\n";
        put(&etc, "backends/file.conf", file_conf.as_bytes(), t)?;
        put(&etc, "backends/mysql.conf", mysql_conf.as_bytes(), t)?;
        let dhcpd = "# -*- coding: utf-8 -*-\n\nmodule = 'DHCPD'\n\nconfig = {\n    \"dhcpdOnDepot\":            False,\n    \"dhcpdConfigFile\":         u\"/etc/dhcp/dhcpd.conf\",\n    \"reloadConfigCommand\":     u\"sudo service isc-dhcp-server restart\",\n    \"fixedAddressFormat\":      u\"IP\",\n    \"defaultClientParameters\": { \"next-server\": u\"10.0.0.1\", \"filename\": u\"linux/pxelinux.0\" }\n}\n";
        put(&etc, "backends/dhcpd.conf", dhcpd.as_bytes(), t)?;
        let pxe = "module = 'OpsiPXEConfd'\nconfig = {\n    \"port\":    u\"/var/run/opsipxeconfd/opsipxeconfd.socket\",\n    \"timeout\": 10.0\n}\n";
        put(&etc, "backends/opsipxeconfd.conf", pxe.as_bytes(), t)?;
        // Audit data and licences in MySQL, hosts and product states in files: both backends.
        let dispatch = "# -*- coding: utf-8 -*-\n;\nbackend_.*         : file, mysql, opsipxeconfd, dhcpd\nhost_.*            : file, opsipxeconfd, dhcpd\nproductOnClient_.* : file, opsipxeconfd\nconfigState_.*     : file, opsipxeconfd\nlicense.*          : mysql\nsoftwareLicense.*  : mysql\naudit.*            : mysql\n.*                 : file\n";
        put(&etc, "backendManager/dispatch.conf", dispatch.as_bytes(), t)?;
        put(
            &etc,
            "backendManager/acl.conf",
            b".*: sys_group(opsiadmin); opsi_depotserver\n",
            t,
        )?;
        for (i, name) in [
            "10_opsi.conf",
            "20_legacy.conf",
            "30_kiosk.conf",
            "40_admin_tasks.conf",
        ]
        .iter()
        .enumerate()
        {
            let mut body = String::new();
            for f in 0..40 + i * 10 {
                body.push_str(&format!(
                    "def helper{f}(self, clientId):\n    \"\"\" {} \"\"\"\n    return self.host_getObjects(id=clientId)\n\n",
                    words(&mut r, 6)
                ));
            }
            put(
                &etc,
                &format!("backendManager/extend.d/{name}"),
                body.as_bytes(),
                t,
            )?;
        }
        put(
            &etc,
            "opsi.conf",
            b"[groups]\nfileadmingroup = pcpatch\n",
            t,
        )?;
        put(
            &etc,
            "opsiconfd.conf",
            b"networks = [0.0.0.0/0]\nworkers = 2\n",
            t,
        )?;
        put(
            &etc,
            "ssl/opsiconfd-key.pem",
            format!(
                "-----BEGIN PRIVATE KEY-----\n{:064x}\n-----END PRIVATE KEY-----\n",
                r.next() as u128 * 31
            )
            .as_bytes(),
            t,
        )?;
        let mut pckeys = String::new();
        for i in 0..clients {
            pckeys.push_str(&format!(
                "{}:{:016x}{:016x}\n",
                client_id(i),
                r.next(),
                r.next()
            ));
        }
        put(&etc, "pckeys", pckeys.as_bytes(), t)?;
        let mut dhcp = String::from("ddns-update-style none;\ndefault-lease-time 68400;\nsubnet 10.0.0.0 netmask 255.0.0.0 {\n");
        for i in 0..clients {
            dhcp.push_str(&format!(
                "\thost client-{i:05} {{\n\t\thardware ethernet {};\n\t\tfixed-address 10.{}.{}.{};\n\t}}\n",
                mac(&mut r),
                i >> 16,
                (i >> 8) & 255,
                i & 255
            ));
        }
        dhcp.push_str("}\n");
        put(&self.root, "etc/dhcp/dhcpd.conf", dhcp.as_bytes(), t)?;

        let cfg = self.config_dir();
        for p in 0..PRODUCTS + NETBOOT {
            let (id, kind) = if p < PRODUCTS {
                (product_id(p), "localboot")
            } else {
                (format!("netboot-{:02}", p - PRODUCTS), "netboot")
            };
            let mut body = format!(
                "[Package]\nversion = {}\ndepends = \n\n[Product]\ntype = {kind}\nid = {id}\nname = {}\ndescription = {}\nadvice = {}\nversion = {}.0\npriority = {}\nlicenserequired = False\nsetupscript = setup.opsiscript\nuninstallscript = uninstall.opsiscript\nupdatescript = \nalwaysscript = \n\n",
                p % 5 + 1,
                words(&mut r, 3),
                words(&mut r, 20),
                words(&mut r, 8),
                p % 9,
                p as i64 % 200 - 100
            );
            for k in 0..2 + r.below(7) {
                body.push_str(&format!(
                    "[ProductProperty]\ntype = unicode\nname = property{k}\nmultivalue = False\neditable = True\ndescription = {}\nvalues = [\"{}\", \"{}\"]\ndefault = [\"{}\"]\n\n",
                    words(&mut r, 6),
                    words(&mut r, 1),
                    words(&mut r, 1),
                    words(&mut r, 1)
                ));
            }
            body.push_str("[Changelog]\n");
            for e in 0..5 + r.below(40) {
                body.push_str(&format!(
                    "{id} ({}.0-{e}) stable; urgency=low\n\n  * {}\n  * {}\n\n -- opsi team <info@example.org>  {}\n\n",
                    p % 9,
                    words(&mut r, 10),
                    words(&mut r, 7),
                    ts(T0 - 40_000_000 + e as i64 * 700_000)
                ));
            }
            put(
                &cfg,
                &format!("products/{id}_{}.0-{}.{kind}", p % 9, p % 5 + 1),
                body.as_bytes(),
                t,
            )?;
        }
        for d in 0..=DEPOTS {
            let id = if d == 0 {
                SERVER.to_string()
            } else {
                depot_id(d - 1)
            };
            let mut body = format!("[depotserver]\nnotes = \ndescription = {}\ndepotremoteurl = smb://{id}/opsi_depot\ndepotlocalurl = file:///var/lib/opsi/depot\nrepositorylocalurl = file:///var/lib/opsi/repository\nmaxbandwidth = 0\nismasterdepot = True\n\n", words(&mut r, 3));
            for p in 0..PRODUCTS {
                body.push_str(&format!(
                    "[{}-state]\nproducttype = LocalbootProduct\nproductversion = {}.0\npackageversion = {}\nlocked = False\n\n",
                    product_id(p),
                    p % 9,
                    p % 5 + 1
                ));
            }
            put(&cfg, &format!("depots/{id}.ini"), body.as_bytes(), t)?;
        }
        let mut config = String::new();
        for i in 0..60 {
            config.push_str(&format!(
                "[opsi.config.{i:02}]\ntype = UnicodeConfig\ndescription = {}\nmultivalue = False\neditable = True\ndefaultvalues = [\"{}\"]\npossiblevalues = [\"{}\", \"{}\"]\n\n",
                words(&mut r, 4),
                words(&mut r, 1),
                words(&mut r, 1),
                words(&mut r, 1)
            ));
        }
        put(&cfg, "config.ini", config.as_bytes(), t)?;
        let mut groups = String::new();
        for g in 0..20 {
            groups.push_str(&format!(
                "[group_{g:02}]\ndescription = {}\nparentgroupid = \n",
                words(&mut r, 2)
            ));
            for i in (g..clients).step_by(20) {
                groups.push_str(&format!("{} = 1\n", client_id(i)));
            }
            groups.push('\n');
        }
        put(&cfg, "clientgroups.ini", groups.as_bytes(), t)?;
        let mut pgroups = String::new();
        for g in 0..10 {
            pgroups.push_str(&format!(
                "[productgroup_{g}]\ndescription = {}\n",
                words(&mut r, 2)
            ));
            for p in (g..PRODUCTS).step_by(10) {
                pgroups.push_str(&format!("{} = 1\n", product_id(p)));
            }
            pgroups.push('\n');
        }
        put(&cfg, "productgroups.ini", pgroups.as_bytes(), t)?;
        put(
            &cfg,
            "templates/pcproto.ini",
            b"[info]\ndescription = \nnotes = \n",
            t,
        )?;
        for i in 0..clients {
            self.write_client(&client_id(i), 0)?;
        }
        Ok(())
    }
}
