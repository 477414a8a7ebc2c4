//! An opsi-like MySQL database for tests and benchmarks: the tables of opsi's MySQL backend
//! (hosts, products and their states, configs, software and hardware audit), filled with
//! deterministic pseudo-random data, plus a "nightly change" script.
//!
//! Everything is produced as SQL text (`SET NAMES utf8mb4` first), to be fed to `mysql` (e.g.
//! with `opsi_backup::mysql::restore_from`, which recreates the database first). The data
//! deliberately contains umlauts, quotes, backslashes, newlines, NULLs and binary blobs
//! (including NUL, `'`, `\` and invalid UTF-8), the things a dump/restore must carry intact.
//!
//! Size: roughly 40 kB of dump per client; [`DataSize::realistic`] with 2000 clients gives
//! an ~80 MB dump.

#![allow(dead_code)]

use std::io::{self, Write};

/// How much data to generate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataSize {
    pub clients: usize,
    pub depots: usize,
    pub products: usize,
    /// Installed products per client (PRODUCT_ON_CLIENT rows per client).
    pub products_per_client: usize,
    /// Distinct software entries (SOFTWARE rows).
    pub software: usize,
    /// SOFTWARE_CONFIG rows per client.
    pub software_per_client: usize,
    /// Rows of the BLOBS table.
    pub blobs: usize,
    pub seed: u64,
}

impl DataSize {
    /// A few thousand rows: for round-trip tests.
    pub(crate) fn small() -> DataSize {
        DataSize {
            clients: 25,
            depots: 2,
            products: 40,
            products_per_client: 20,
            software: 300,
            software_per_client: 60,
            blobs: 40,
            seed: 1,
        }
    }

    /// A server with `clients` audited clients (~40 kB of dump each).
    pub(crate) fn realistic(clients: usize) -> DataSize {
        DataSize {
            clients,
            depots: 4,
            products: 180,
            products_per_client: 35,
            software: 6000,
            software_per_client: 120,
            blobs: 0,
            seed: 7,
        }
    }
}

/// The tables, in dependency order.
pub(crate) const TABLES: &[&str] = &[
    "HOST",
    "CONFIG",
    "CONFIG_VALUE",
    "CONFIG_STATE",
    "PRODUCT",
    "PRODUCT_ON_DEPOT",
    "PRODUCT_ON_CLIENT",
    "SOFTWARE",
    "SOFTWARE_CONFIG",
    "HARDWARE_DEVICE_COMPUTER_SYSTEM",
    "HARDWARE_CONFIG_COMPUTER_SYSTEM",
    "HARDWARE_DEVICE_NETWORK_CONTROLLER",
    "HARDWARE_CONFIG_NETWORK_CONTROLLER",
    "BLOBS",
];

/// Table definitions after opsi's MySQL backend (InnoDB, utf8, the same keys).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE `HOST` (
  `hostId` varchar(255) NOT NULL, `type` varchar(30), `description` varchar(100),
  `notes` varchar(500), `hardwareAddress` varchar(17), `ipAddress` varchar(15),
  `inventoryNumber` varchar(64), `created` TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  `lastSeen` TIMESTAMP DEFAULT CURRENT_TIMESTAMP, `opsiHostKey` varchar(32),
  `oneTimePassword` varchar(32), `maxBandwidth` integer, `depotLocalUrl` varchar(128),
  `depotRemoteUrl` varchar(255), `isMasterDepot` bool, `masterDepotId` varchar(255),
  PRIMARY KEY (`hostId`), KEY `index_host_type` (`type`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `CONFIG` (
  `configId` varchar(200) NOT NULL, `type` varchar(30) NOT NULL, `description` varchar(256),
  `multiValue` bool NOT NULL, `editable` bool NOT NULL,
  PRIMARY KEY (`configId`), KEY `index_config_type` (`type`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `CONFIG_VALUE` (
  `config_value_id` integer NOT NULL AUTO_INCREMENT, `configId` varchar(200) NOT NULL,
  `value` TEXT, `isDefault` bool,
  PRIMARY KEY (`config_value_id`), FOREIGN KEY (`configId`) REFERENCES `CONFIG` (`configId`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `CONFIG_STATE` (
  `config_state_id` integer NOT NULL AUTO_INCREMENT, `configId` varchar(200) NOT NULL,
  `objectId` varchar(255) NOT NULL, `values` text,
  PRIMARY KEY (`config_state_id`), KEY `index_config_state_configId` (`configId`),
  KEY `index_config_state_objectId` (`objectId`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `PRODUCT` (
  `productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL,
  `packageVersion` varchar(16) NOT NULL, `type` varchar(32) NOT NULL, `name` varchar(128) NOT NULL,
  `licenseRequired` varchar(50), `setupScript` varchar(50), `uninstallScript` varchar(50),
  `priority` integer, `description` TEXT, `advice` TEXT, `changelog` TEXT,
  PRIMARY KEY (`productId`, `productVersion`, `packageVersion`), KEY `index_product_type` (`type`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `PRODUCT_ON_DEPOT` (
  `productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL,
  `packageVersion` varchar(16) NOT NULL, `depotId` varchar(255) NOT NULL,
  `productType` varchar(16) NOT NULL, `locked` bool,
  PRIMARY KEY (`productId`, `depotId`),
  FOREIGN KEY (`productId`, `productVersion`, `packageVersion`) REFERENCES `PRODUCT` (`productId`, `productVersion`, `packageVersion`),
  FOREIGN KEY (`depotId`) REFERENCES `HOST` (`hostId`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `PRODUCT_ON_CLIENT` (
  `productId` varchar(255) NOT NULL, `clientId` varchar(255) NOT NULL,
  `productType` varchar(16) NOT NULL, `targetConfiguration` varchar(16),
  `installationStatus` varchar(16), `actionRequest` varchar(16), `actionProgress` varchar(255),
  `actionResult` varchar(16), `lastAction` varchar(16), `productVersion` varchar(32),
  `packageVersion` varchar(16), `modificationTime` TIMESTAMP NULL DEFAULT NULL,
  PRIMARY KEY (`productId`, `clientId`), FOREIGN KEY (`clientId`) REFERENCES `HOST` (`hostId`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `SOFTWARE` (
  `name` varchar(100) NOT NULL, `version` varchar(100) NOT NULL, `subVersion` varchar(100) NOT NULL,
  `language` varchar(10) NOT NULL, `architecture` varchar(3) NOT NULL,
  `windowsSoftwareId` varchar(100), `windowsDisplayName` varchar(100),
  `windowsDisplayVersion` varchar(100), `type` varchar(30) NOT NULL, `installSize` BIGINT,
  PRIMARY KEY (`name`, `version`, `subVersion`, `language`, `architecture`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `SOFTWARE_CONFIG` (
  `config_id` integer NOT NULL AUTO_INCREMENT, `clientId` varchar(255) NOT NULL,
  `name` varchar(100) NOT NULL, `version` varchar(100) NOT NULL, `subVersion` varchar(100) NOT NULL,
  `language` varchar(10) NOT NULL, `architecture` varchar(3) NOT NULL,
  `uninstallString` varchar(200), `binaryName` varchar(100),
  `firstseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `lastseen` TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:01', `state` TINYINT NOT NULL,
  `usageFrequency` integer NOT NULL DEFAULT -1,
  `lastUsed` TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:01', `licenseKey` VARCHAR(1024),
  PRIMARY KEY (`config_id`), KEY `index_software_config_clientId` (`clientId`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `HARDWARE_DEVICE_COMPUTER_SYSTEM` (
  `hardware_id` INTEGER NOT NULL AUTO_INCREMENT, `name` varchar(100), `description` varchar(100),
  `vendor` varchar(50), `model` varchar(100), `serialNumber` varchar(50),
  `systemType` varchar(50), `totalPhysicalMemory` bigint, `dellexpresscode` varchar(50),
  PRIMARY KEY (`hardware_id`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `HARDWARE_CONFIG_COMPUTER_SYSTEM` (
  `config_id` INTEGER NOT NULL AUTO_INCREMENT, `hostId` varchar(255) NOT NULL,
  `hardware_id` INTEGER NOT NULL, `firstseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `lastseen` TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:01', `state` TINYINT NOT NULL,
  `sku` varchar(100), `hostname` varchar(100), `domain` varchar(100), `user` varchar(100),
  PRIMARY KEY (`config_id`), KEY (`hostId`), KEY (`hardware_id`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `HARDWARE_DEVICE_NETWORK_CONTROLLER` (
  `hardware_id` INTEGER NOT NULL AUTO_INCREMENT, `name` varchar(100), `description` varchar(100),
  `vendor` varchar(50), `model` varchar(100), `vendorId` varchar(4), `deviceId` varchar(4),
  `adapterType` varchar(100), `maxSpeed` bigint, `autoSense` varchar(20),
  PRIMARY KEY (`hardware_id`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `HARDWARE_CONFIG_NETWORK_CONTROLLER` (
  `config_id` INTEGER NOT NULL AUTO_INCREMENT, `hostId` varchar(255) NOT NULL,
  `hardware_id` INTEGER NOT NULL, `firstseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `lastseen` TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:01', `state` TINYINT NOT NULL,
  `macAddress` varchar(20), `ipAddress` varchar(60), `ipEnabled` varchar(6),
  `netConnectionStatus` varchar(20), `serviceName` varchar(100),
  PRIMARY KEY (`config_id`), KEY (`hostId`), KEY (`hardware_id`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
CREATE TABLE `BLOBS` (
  `id` INTEGER NOT NULL, `label` varchar(100), `data` MEDIUMBLOB, PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci;
"#;

/// splitmix64: small, deterministic, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A SQL string literal (default sql_mode, i.e. backslash escapes).
pub(crate) fn lit(s: &str) -> String {
    opsi_backup::mysql::quote_string(s)
}

fn opt(s: Option<String>) -> String {
    s.map(|s| lit(&s)).unwrap_or_else(|| "NULL".into())
}

fn ts(secs: u64) -> String {
    // 2023-01-01 plus some time; always a valid TIMESTAMP, rendered without time zone games.
    let t = 1_672_531_200 + secs % 60_000_000;
    format!("FROM_UNIXTIME({t})")
}

const WORDS: &[&str] = &[
    "Größe",
    "Übersicht",
    "Ärger",
    "straße",
    "Löschen",
    "naïve",
    "café",
    "Prüfung",
    "it's",
    "say \"hi\"",
    r"C:\Program Files\opsi",
    "tab\there",
    "line\nbreak",
    "50% off",
    "a_b",
    "Zürich",
    "Ωmega",
    "kopf",
    "installer",
    "update",
    "agent",
    "driver",
    "service",
    "runtime",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn client_id(i: usize) -> String {
    format!("client-{i:05}.domain.example")
}

fn depot_id(i: usize) -> String {
    format!("depot-{i:02}.domain.example")
}

fn product_id(i: usize) -> String {
    format!("product-{i:03}")
}

fn software_key(i: usize) -> (String, String, String, String) {
    let kind = ["Suite", "Tool", "Runtime", "Treiber"][i % 4];
    (
        format!("Software {i:05} {kind}"),
        format!("{}.{}.{}", i % 13, i % 7, i % 101),
        String::new(),
        ["de-DE", "en-US", ""][i % 3].to_string(),
    )
}

fn mac(rng: &mut Rng) -> String {
    (0..6)
        .map(|_| format!("{:02x}", rng.below(256)))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes multi-row INSERTs of `rows` (each a parenthesised value list) in batches.
fn inserts(out: &mut dyn Write, table: &str, rows: impl Iterator<Item = String>) -> io::Result<()> {
    let mut batch = Vec::new();
    let flush = |out: &mut dyn Write, batch: &mut Vec<String>| -> io::Result<()> {
        if !batch.is_empty() {
            writeln!(out, "INSERT INTO `{table}` VALUES {};", batch.join(","))?;
            batch.clear();
        }
        Ok(())
    };
    for row in rows {
        batch.push(row);
        if batch.len() == 500 {
            flush(out, &mut batch)?;
        }
    }
    flush(out, &mut batch)
}

fn host_row(rng: &mut Rng, id: &str, kind: &str) -> String {
    format!(
        "({},{},{},{},{},{},{},{},{},{},NULL,{},{},{},{},NULL)",
        lit(id),
        lit(kind),
        opt(rng.chance(70).then(|| words(rng, 3))),
        opt(rng.chance(30).then(|| words(rng, 8))),
        lit(&mac(rng)),
        lit(&format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        )),
        opt(rng
            .chance(50)
            .then(|| format!("INV-{}", rng.below(100_000)))),
        ts(rng.next() % 10_000_000),
        ts(rng.next() % 40_000_000),
        lit(&format!("{:016x}{:016x}", rng.next(), rng.next())),
        if kind == "OpsiClient" {
            "0".to_string()
        } else {
            "10000".to_string()
        },
        opt((kind != "OpsiClient").then(|| "file:///var/lib/opsi/depot".to_string())),
        opt((kind != "OpsiClient").then(|| format!("webdavs://{id}:4447/depot"))),
        if kind == "OpsiConfigserver" { "1" } else { "0" },
    )
}

fn poc_row(rng: &mut Rng, product: usize, client: &str) -> String {
    format!(
        "({},{},'LocalbootProduct',{},{},{},{},{},{},'{}.0','{}',{})",
        lit(&product_id(product)),
        lit(client),
        opt(rng.chance(80).then(|| "installed".to_string())),
        lit(rng.pick(&["installed", "not_installed", "unknown"])),
        lit(rng.pick(&["none", "setup", "uninstall", "update"])),
        lit(&words(rng, 2)),
        lit(rng.pick(&["successful", "failed", "none"])),
        lit(rng.pick(&["setup", "none", "update"])),
        product % 9,
        product % 5 + 1,
        ts(rng.next() % 30_000_000),
    )
}

fn software_config_row(rng: &mut Rng, client: &str, software: usize) -> String {
    let (name, version, sub, lang) = software_key(software);
    format!(
        "(NULL,{},{},{},{},{},'x64',{},{},{},{},{},{},{},{})",
        lit(client),
        lit(&name),
        lit(&version),
        lit(&sub),
        lit(&lang),
        lit(&format!(r#""C:\Program Files\{name}\uninst.exe" /S"#)),
        opt(rng
            .chance(40)
            .then(|| format!("{}.exe", name.replace(' ', "_")))),
        ts(rng.next() % 5_000_000),
        ts(5_000_000 + rng.next() % 5_000_000),
        rng.below(2),
        rng.below(100) as i64 - 1,
        ts(rng.next() % 10_000_000),
        opt(rng
            .chance(5)
            .then(|| format!("{:08X}-{:08X}", rng.next() as u32, rng.next() as u32))),
    )
}

fn hw_config_rows(
    rng: &mut Rng,
    client: &str,
    hw_cs: usize,
    hw_nc: usize,
) -> (String, Vec<String>) {
    let cs = format!(
        "(NULL,{},{},{},{},1,{},{},'domain.example',{})",
        lit(client),
        1 + rng.below(hw_cs),
        ts(rng.next() % 5_000_000),
        ts(5_000_000 + rng.next() % 5_000_000),
        lit(&format!("SKU-{}", rng.below(1000))),
        lit(client.split('.').next().unwrap()),
        opt(rng
            .chance(60)
            .then(|| format!("DOMAIN\\user{}", rng.below(500)))),
    );
    let ncs = (0..1 + rng.below(3))
        .map(|_| {
            format!(
                "(NULL,{},{},{},{},1,{},{},'True',{},{})",
                lit(client),
                1 + rng.below(hw_nc),
                ts(rng.next() % 5_000_000),
                ts(5_000_000 + rng.next() % 5_000_000),
                lit(&mac(rng).to_uppercase()),
                lit(&format!(
                    "10.1.{}.{};fe80::{:x}",
                    rng.below(256),
                    rng.below(256),
                    rng.next() as u16
                )),
                lit(rng.pick(&["Connected", "Disconnected", "Media disconnected"])),
                lit(rng.pick(&["e1dexpress", "Netwtw10", "rt640x64", "vmxnet3ndis6"])),
            )
        })
        .collect();
    (cs, ncs)
}

/// Binary values with every byte the dump must escape or carry raw.
pub(crate) fn blob(rng: &mut Rng, i: usize) -> Vec<u8> {
    let mut v: Vec<u8> = vec![0, b'\'', b'"', b'\\', b'\n', b'\r', 0x1a, 0xff, 0xfe, 0xc3];
    v.extend((0..(i * 37) % 3000).map(|_| rng.next() as u8));
    v
}

/// The whole database: schema and data. Feed to `mysql <database>`.
pub(crate) fn write_database(out: &mut dyn Write, size: &DataSize) -> io::Result<()> {
    let mut rng = Rng::new(size.seed);
    writeln!(out, "SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS=0;")?;
    out.write_all(SCHEMA.as_bytes())?;

    let mut hosts = vec![host_row(
        &mut rng,
        "config.domain.example",
        "OpsiConfigserver",
    )];
    hosts.extend((0..size.depots).map(|d| host_row(&mut rng, &depot_id(d), "OpsiDepotserver")));
    hosts.extend((0..size.clients).map(|c| host_row(&mut rng, &client_id(c), "OpsiClient")));
    inserts(out, "HOST", hosts.into_iter())?;

    let configs = 60;
    inserts(
        out,
        "CONFIG",
        (0..configs).map(|i| {
            format!(
                "({},'UnicodeConfig',{},{},1)",
                lit(&format!("opsi.config.{i:02}")),
                lit(&words(&mut rng, 4)),
                i % 2
            )
        }),
    )?;
    inserts(
        out,
        "CONFIG_VALUE",
        (0..configs * 3).map(|i| {
            format!(
                "(NULL,{},{},{})",
                lit(&format!("opsi.config.{:02}", i / 3)),
                lit(&words(&mut rng, 2)),
                i % 3 == 0
            )
        }),
    )?;
    inserts(
        out,
        "CONFIG_STATE",
        (0..size.clients * 2).map(|i| {
            format!(
                "(NULL,{},{},{})",
                lit(&format!("opsi.config.{:02}", i % configs)),
                lit(&client_id(i / 2)),
                lit(&format!(
                    "[\"{}\"]",
                    words(&mut rng, 1).replace('"', "\\\"")
                ))
            )
        }),
    )?;

    inserts(
        out,
        "PRODUCT",
        (0..size.products).map(|p| {
            format!(
                "({},'{}.0','{}','LocalbootProduct',{},NULL,'setup.opsiscript',{},{},{},{},{})",
                lit(&product_id(p)),
                p % 9,
                p % 5 + 1,
                lit(&format!("Produkt {p} – {}", words(&mut rng, 2))),
                opt(rng.chance(50).then(|| "uninstall.opsiscript".to_string())),
                p as i64 % 200 - 100,
                lit(&words(&mut rng, 12)),
                opt(rng.chance(30).then(|| words(&mut rng, 6))),
                lit(&(0..5)
                    .map(|_| words(&mut rng, 10))
                    .collect::<Vec<_>>()
                    .join("\n  * ")),
            )
        }),
    )?;
    inserts(
        out,
        "PRODUCT_ON_DEPOT",
        (0..size.products)
            .flat_map(|p| (0..size.depots).map(move |d| (p, d)))
            .map(|(p, d)| {
                format!(
                    "({},'{}.0','{}',{},'LocalbootProduct',{})",
                    lit(&product_id(p)),
                    p % 9,
                    p % 5 + 1,
                    lit(&depot_id(d)),
                    (p + d) % 2
                )
            }),
    )?;
    // Primary-key order (productId, clientId), as InnoDB will keep it anyway.
    let mut pocs = Vec::new();
    for p in 0..size.products {
        for c in 0..size.clients {
            if (c * 7 + p * 13) % size.products < size.products_per_client {
                pocs.push((p, c));
            }
        }
    }
    inserts(
        out,
        "PRODUCT_ON_CLIENT",
        pocs.into_iter()
            .map(|(p, c)| poc_row(&mut rng, p, &client_id(c))),
    )?;

    inserts(
        out,
        "SOFTWARE",
        (0..size.software).map(|i| {
            let (name, version, sub, lang) = software_key(i);
            format!(
                "({},{},{},{},'x64',{},{},{},'AuditSoftware',{})",
                lit(&name),
                lit(&version),
                lit(&sub),
                lit(&lang),
                opt(rng.chance(70).then(|| format!(
                    "{{{:08X}-{:04X}}}",
                    rng.next() as u32,
                    rng.next() as u16
                ))),
                lit(&name),
                lit(&version),
                if rng.chance(20) {
                    "NULL".to_string()
                } else {
                    rng.below(1 << 30).to_string()
                },
            )
        }),
    )?;
    let sw_per_client = size.software_per_client.min(size.software);
    inserts(
        out,
        "SOFTWARE_CONFIG",
        (0..size.clients)
            .flat_map(|c| (0..sw_per_client).map(move |k| (c, k)))
            .map(|(c, k)| {
                let sw = (c * 31 + k * (size.software / sw_per_client.max(1))) % size.software;
                software_config_row(&mut rng, &client_id(c), sw)
            }),
    )?;

    let hw_cs = 1 + size.clients / 10;
    let hw_nc = 1 + size.clients / 20;
    inserts(
        out,
        "HARDWARE_DEVICE_COMPUTER_SYSTEM",
        (0..hw_cs).map(|i| {
            format!(
                "(NULL,{},{},{},{},{},'x64-based PC',{},NULL)",
                lit(&format!("SYSTEM-{i}")),
                lit(&words(&mut rng, 3)),
                lit(rng.pick(&[
                    "Dell Inc.",
                    "LENOVO",
                    "HP",
                    "Fujitsu Technology Solutions GmbH"
                ])),
                lit(&format!("Modell {}", rng.below(500))),
                lit(&format!("SN{:010}", rng.next() % 10_000_000_000)),
                (4 + rng.below(60)) << 30,
            )
        }),
    )?;
    inserts(
        out,
        "HARDWARE_DEVICE_NETWORK_CONTROLLER",
        (0..hw_nc).map(|i| {
            format!(
                "(NULL,{},{},{},{},'{:04X}','{:04X}','Ethernet 802.3',{},'true')",
                lit(&format!("Netzwerkadapter #{i}")),
                lit(&words(&mut rng, 3)),
                lit(rng.pick(&["Intel Corporation", "Realtek", "Broadcom"])),
                lit(&format!("Controller {}", rng.below(100))),
                rng.below(0x10000),
                rng.below(0x10000),
                [100_000_000u64, 1_000_000_000, 10_000_000_000][rng.below(3)],
            )
        }),
    )?;
    let mut cs_rows = Vec::new();
    let mut nc_rows = Vec::new();
    for c in 0..size.clients {
        let (cs, ncs) = hw_config_rows(&mut rng, &client_id(c), hw_cs, hw_nc);
        cs_rows.push(cs);
        nc_rows.extend(ncs);
    }
    inserts(out, "HARDWARE_CONFIG_COMPUTER_SYSTEM", cs_rows.into_iter())?;
    inserts(
        out,
        "HARDWARE_CONFIG_NETWORK_CONTROLLER",
        nc_rows.into_iter(),
    )?;

    inserts(
        out,
        "BLOBS",
        (0..size.blobs).map(|i| {
            let data = blob(&mut rng, i);
            let value = if i % 7 == 3 {
                "NULL".to_string()
            } else {
                format!("X'{}'", hex(&data))
            };
            format!(
                "({i},{},{value})",
                opt((i % 2 == 0).then(|| words(&mut rng, 2)))
            )
        }),
    )?;
    writeln!(out, "SET FOREIGN_KEY_CHECKS=1;")
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

/// A night's worth of changes: about `percent`% of the product states, software and hardware
/// audit rows updated (new lastseen, new action results), `new_clients` clients added whose
/// ids sort into the middle of the client list (so their product states land in the middle of
/// PRODUCT_ON_CLIENT), and their audit rows appended. Feed to `mysql <database>`.
pub(crate) fn write_nightly_changes(
    out: &mut dyn Write,
    size: &DataSize,
    percent: f64,
    new_clients: usize,
    seed: u64,
) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    writeln!(out, "SET NAMES utf8mb4;")?;
    let per_mille = (percent * 10.0).round() as u64;
    let hit = |rng: &mut Rng| rng.next() % 1000 < per_mille;
    // Updates by primary key, so the touched rows are spread over the tables.
    let sw_rows = size.clients * size.software_per_client.min(size.software);
    for id in 1..=sw_rows {
        if hit(&mut rng) {
            writeln!(
                out,
                "UPDATE `SOFTWARE_CONFIG` SET `lastseen`={}, `usageFrequency`={} WHERE `config_id`={id};",
                ts(20_000_000 + rng.next() % 1_000_000),
                rng.below(100)
            )?;
        }
    }
    for c in 0..size.clients {
        if hit(&mut rng) {
            writeln!(
                out,
                "UPDATE `HOST` SET `lastSeen`={} WHERE `hostId`={};",
                ts(45_000_000 + rng.next() % 1_000_000),
                lit(&client_id(c))
            )?;
        }
        for p in 0..size.products {
            if (c * 7 + p * 13) % size.products < size.products_per_client && hit(&mut rng) {
                writeln!(
                    out,
                    "UPDATE `PRODUCT_ON_CLIENT` SET `actionResult`='successful', `actionRequest`='none', \
                     `modificationTime`={} WHERE `productId`={} AND `clientId`={};",
                    ts(45_000_000 + rng.next() % 1_000_000),
                    lit(&product_id(p)),
                    lit(&client_id(c))
                )?;
            }
        }
        if hit(&mut rng) {
            writeln!(
                out,
                "UPDATE `HARDWARE_CONFIG_COMPUTER_SYSTEM` SET `lastseen`={} WHERE `hostId`={};",
                ts(45_000_000 + rng.next() % 1_000_000),
                lit(&client_id(c))
            )?;
        }
    }
    // New clients between existing ones: `client-00042.domain.example` < `client-00042a...`.
    let hw_cs = 1 + size.clients / 10;
    let hw_nc = 1 + size.clients / 20;
    for n in 0..new_clients {
        let base = (n + 1) * size.clients / (new_clients + 1);
        let id = format!("client-{base:05}a.domain.example");
        inserts(
            out,
            "HOST",
            std::iter::once(host_row(&mut rng, &id, "OpsiClient")),
        )?;
        let pocs: Vec<String> = (0..size.products)
            .filter(|p| (base * 7 + p * 13) % size.products < size.products_per_client)
            .map(|p| poc_row(&mut rng, p, &id))
            .collect();
        inserts(out, "PRODUCT_ON_CLIENT", pocs.into_iter())?;
        let sw_per_client = size.software_per_client.min(size.software);
        let rows: Vec<String> = (0..sw_per_client)
            .map(|k| software_config_row(&mut rng, &id, (base * 31 + k * 17) % size.software))
            .collect();
        inserts(out, "SOFTWARE_CONFIG", rows.into_iter())?;
        let (cs, ncs) = hw_config_rows(&mut rng, &id, hw_cs, hw_nc);
        inserts(out, "HARDWARE_CONFIG_COMPUTER_SYSTEM", std::iter::once(cs))?;
        inserts(out, "HARDWARE_CONFIG_NETWORK_CONTROLLER", ncs.into_iter())?;
    }
    Ok(())
}

/// Clustered changes, as opsi's nightly software audit makes them: every SOFTWARE_CONFIG and
/// hardware row of `percent`% of the clients gets a new `lastseen` (their rows are
/// contiguous), and those clients' product states change. Feed to `mysql <database>`.
pub(crate) fn write_reaudit(
    out: &mut dyn Write,
    size: &DataSize,
    percent: f64,
    seed: u64,
) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    writeln!(out, "SET NAMES utf8mb4;")?;
    let per_mille = (percent * 10.0).round() as u64;
    for c in 0..size.clients {
        if rng.next() % 1000 >= per_mille {
            continue;
        }
        let id = lit(&client_id(c));
        let when = ts(46_000_000 + rng.next() % 1_000_000);
        writeln!(
            out,
            "UPDATE `SOFTWARE_CONFIG` SET `lastseen`={when} WHERE `clientId`={id};"
        )?;
        writeln!(
            out,
            "UPDATE `HARDWARE_CONFIG_COMPUTER_SYSTEM` SET `lastseen`={when} WHERE `hostId`={id};"
        )?;
        writeln!(out, "UPDATE `HARDWARE_CONFIG_NETWORK_CONTROLLER` SET `lastseen`={when} WHERE `hostId`={id};")?;
        writeln!(
            out,
            "UPDATE `HOST` SET `lastSeen`={when} WHERE `hostId`={id};"
        )?;
        writeln!(
            out,
            "UPDATE `PRODUCT_ON_CLIENT` SET `actionResult`='successful', `modificationTime`={when} WHERE `clientId`={id};"
        )?;
    }
    Ok(())
}

/// The database as SQL text in memory.
pub(crate) fn database_sql(size: &DataSize) -> Vec<u8> {
    let mut out = Vec::new();
    write_database(&mut out, size).expect("writing to memory");
    out
}
