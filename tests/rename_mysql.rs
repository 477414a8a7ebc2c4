//! `opsi_backup::rename::rename_in_mysql` against a real MySQL/MariaDB server, on a database
//! with the tables of python-opsi's MySQL backend (`OPSI/Backend/SQL.py`, `MySQL.py`: same
//! column names, keys, engines) holding the config server's id in every place it can be.
//!
//! Set `OPSI_BACKUP_TEST_MYSQL` as for `tests/mysql_backend.rs` (`tests/common/mysql_env.rs`
//! reads it; without it the tests fail, or with `OPSI_BACKUP_SKIP_MYSQL=1` print "SKIPPED (not
//! tested)" and pass). The account must be able to create databases; each test uses its own,
//! `obt_rename_<pid>_<n>`, dropped at the end.

use std::sync::atomic::{AtomicUsize, Ordering};

use opsi_backup::error::Error;
use opsi_backup::mysql::{quote_identifier, run_sql, MysqlConfig};
use opsi_backup::rename::{rename_in_mysql, validate_server_id};

#[path = "common/mysql_env.rs"]
mod mysql_env;

const OLD: &str = "opsi.example.org";
const NEW: &str = "newsrv.test.lan";
const LOOKALIKE: &str = "pc.opsi.example.org";

/// The server of `OPSI_BACKUP_TEST_MYSQL` as root (the test fails without one, unless
/// `OPSI_BACKUP_SKIP_MYSQL=1`; see `tests/common/mysql_env.rs`).
fn server() -> Option<MysqlConfig> {
    mysql_env::server().map(|s| s.root())
}

/// A database of its own, dropped when this goes out of scope.
struct TestDb {
    cfg: MysqlConfig,
}

impl TestDb {
    fn create(server: &MysqlConfig) -> TestDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "obt_rename_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let db = quote_identifier(&name).unwrap();
        run_sql(
            server,
            None,
            &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"),
        )
        .expect("creating the test database");
        let mut cfg = server.clone();
        cfg.database = name;
        TestDb { cfg }
    }

    fn sql(&self, sql: &str) -> String {
        run_sql(&self.cfg, Some(&self.cfg.database), sql).expect(sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let db = quote_identifier(&self.cfg.database).unwrap();
        let _ = run_sql(&self.cfg, None, &format!("DROP DATABASE IF EXISTS {db};"));
    }
}

const INNODB: &str = "ENGINE=InnoDB DEFAULT CHARSET utf8 COLLATE utf8_general_ci";
const MYISAM: &str = "ENGINE=MyISAM DEFAULT CHARSET utf8 COLLATE utf8_general_ci";

fn schema() -> String {
    format!(
        r#"
CREATE TABLE `HOST` (`hostId` varchar(255) NOT NULL, `type` varchar(30), `description` varchar(100),
  `notes` varchar(500), `hardwareAddress` varchar(17), `ipAddress` varchar(15), `inventoryNumber` varchar(64),
  `created` TIMESTAMP DEFAULT CURRENT_TIMESTAMP, `lastSeen` TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  `opsiHostKey` varchar(32), `oneTimePassword` varchar(32), `maxBandwidth` integer, `depotLocalUrl` varchar(128),
  `depotRemoteUrl` varchar(255), `depotWebdavUrl` varchar(255), `repositoryLocalUrl` varchar(128),
  `repositoryRemoteUrl` varchar(255), `networkAddress` varchar(31), `isMasterDepot` bool,
  `masterDepotId` varchar(255), `workbenchLocalUrl` varchar(128), `workbenchRemoteUrl` varchar(255),
  PRIMARY KEY (`hostId`)) {INNODB};
CREATE INDEX `index_host_type` on `HOST` (`type`);
CREATE TABLE `CONFIG` (`configId` varchar(200) NOT NULL, `type` varchar(30) NOT NULL, `description` varchar(256),
  `multiValue` bool NOT NULL, `editable` bool NOT NULL, PRIMARY KEY (`configId`)) {INNODB};
CREATE TABLE `CONFIG_VALUE` (`config_value_id` integer NOT NULL AUTO_INCREMENT, `configId` varchar(200) NOT NULL,
  `value` TEXT, `isDefault` bool, PRIMARY KEY (`config_value_id`),
  FOREIGN KEY (`configId`) REFERENCES `CONFIG` (`configId`)) {INNODB};
CREATE TABLE `CONFIG_STATE` (`config_state_id` integer NOT NULL AUTO_INCREMENT, `configId` varchar(200) NOT NULL,
  `objectId` varchar(255) NOT NULL, `values` text, PRIMARY KEY (`config_state_id`)) {INNODB};
CREATE TABLE `PRODUCT` (`productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL,
  `packageVersion` varchar(16) NOT NULL, `type` varchar(32) NOT NULL, `name` varchar(128) NOT NULL,
  `licenseRequired` varchar(50), `setupScript` varchar(50), `uninstallScript` varchar(50), `updateScript` varchar(50),
  `alwaysScript` varchar(50), `onceScript` varchar(50), `customScript` varchar(50), `userLoginScript` varchar(50),
  `priority` integer, `description` TEXT, `advice` TEXT, `pxeConfigTemplate` varchar(50), `changelog` TEXT,
  PRIMARY KEY (`productId`, `productVersion`, `packageVersion`)) {INNODB};
CREATE TABLE `PRODUCT_ON_DEPOT` (`productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL,
  `packageVersion` varchar(16) NOT NULL, `depotId` varchar(255) NOT NULL, `productType` varchar(16) NOT NULL,
  `locked` bool, PRIMARY KEY (`productId`, `depotId`),
  FOREIGN KEY (`productId`, `productVersion`, `packageVersion`) REFERENCES `PRODUCT` (`productId`, `productVersion`, `packageVersion`),
  FOREIGN KEY (`depotId`) REFERENCES `HOST` (`hostId`)) {INNODB};
CREATE TABLE `PRODUCT_PROPERTY` (`productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL,
  `packageVersion` varchar(16) NOT NULL, `propertyId` varchar(200) NOT NULL, `type` varchar(30) NOT NULL,
  `description` TEXT, `multiValue` bool NOT NULL, `editable` bool NOT NULL,
  PRIMARY KEY (`productId`, `productVersion`, `packageVersion`, `propertyId`),
  FOREIGN KEY (`productId`, `productVersion`, `packageVersion`) REFERENCES `PRODUCT` (`productId`, `productVersion`, `packageVersion`)) {INNODB};
CREATE TABLE `PRODUCT_PROPERTY_VALUE` (`product_property_id` integer NOT NULL AUTO_INCREMENT,
  `productId` varchar(255) NOT NULL, `productVersion` varchar(32) NOT NULL, `packageVersion` varchar(16) NOT NULL,
  `propertyId` varchar(200) NOT NULL, `value` text, `isDefault` bool, PRIMARY KEY (`product_property_id`),
  FOREIGN KEY (`productId`, `productVersion`, `packageVersion`, `propertyId`)
    REFERENCES `PRODUCT_PROPERTY` (`productId`, `productVersion`, `packageVersion`, `propertyId`)) {INNODB};
CREATE TABLE `PRODUCT_ON_CLIENT` (`productId` varchar(255) NOT NULL, `clientId` varchar(255) NOT NULL,
  `productType` varchar(16) NOT NULL, `targetConfiguration` varchar(16), `installationStatus` varchar(16),
  `actionRequest` varchar(16), `actionProgress` varchar(255), `actionResult` varchar(16), `lastAction` varchar(16),
  `productVersion` varchar(32), `packageVersion` varchar(16), `modificationTime` TIMESTAMP NULL DEFAULT NULL,
  PRIMARY KEY (`productId`, `clientId`), FOREIGN KEY (`clientId`) REFERENCES `HOST` (`hostId`)) {INNODB};
CREATE TABLE `PRODUCT_PROPERTY_STATE` (`product_property_state_id` integer NOT NULL AUTO_INCREMENT,
  `productId` varchar(255) NOT NULL, `propertyId` varchar(200) NOT NULL, `objectId` varchar(255) NOT NULL,
  `values` text, PRIMARY KEY (`product_property_state_id`)) {INNODB};
CREATE TABLE `GROUP` (`type` varchar(30) NOT NULL, `groupId` varchar(255) NOT NULL, `parentGroupId` varchar(255),
  `description` varchar(100), `notes` varchar(500), PRIMARY KEY (`type`, `groupId`)) {INNODB};
CREATE TABLE `OBJECT_TO_GROUP` (`object_to_group_id` integer NOT NULL AUTO_INCREMENT, `groupType` varchar(30) NOT NULL,
  `groupId` varchar(255) NOT NULL, `objectId` varchar(255) NOT NULL, PRIMARY KEY (`object_to_group_id`),
  FOREIGN KEY (`groupType`, `groupId`) REFERENCES `GROUP` (`type`, `groupId`)) {INNODB};
CREATE TABLE `LICENSE_CONTRACT` (`licenseContractId` VARCHAR(100) NOT NULL, `type` varchar(30) NOT NULL,
  `description` varchar(100), `notes` varchar(1000), `partner` varchar(100),
  `conclusionDate` TIMESTAMP NULL DEFAULT NULL, `notificationDate` TIMESTAMP NULL DEFAULT NULL,
  `expirationDate` TIMESTAMP NULL DEFAULT NULL, PRIMARY KEY (`licenseContractId`)) {INNODB};
CREATE TABLE `SOFTWARE_LICENSE` (`softwareLicenseId` VARCHAR(100) NOT NULL, `licenseContractId` VARCHAR(100) NOT NULL,
  `type` varchar(30) NOT NULL, `boundToHost` varchar(255), `maxInstallations` integer,
  `expirationDate` TIMESTAMP NULL DEFAULT NULL, PRIMARY KEY (`softwareLicenseId`),
  FOREIGN KEY (`licenseContractId`) REFERENCES `LICENSE_CONTRACT` (`licenseContractId`)) {INNODB};
CREATE TABLE `LICENSE_POOL` (`licensePoolId` VARCHAR(100) NOT NULL, `type` varchar(30) NOT NULL,
  `description` varchar(200), PRIMARY KEY (`licensePoolId`)) {INNODB};
CREATE TABLE `SOFTWARE_LICENSE_TO_LICENSE_POOL` (`softwareLicenseId` VARCHAR(100) NOT NULL,
  `licensePoolId` VARCHAR(100) NOT NULL, `licenseKey` VARCHAR(1024), PRIMARY KEY (`softwareLicenseId`, `licensePoolId`),
  FOREIGN KEY (`softwareLicenseId`) REFERENCES `SOFTWARE_LICENSE` (`softwareLicenseId`),
  FOREIGN KEY (`licensePoolId`) REFERENCES `LICENSE_POOL` (`licensePoolId`)) {INNODB};
CREATE TABLE `LICENSE_ON_CLIENT` (`license_on_client_id` integer NOT NULL AUTO_INCREMENT,
  `softwareLicenseId` VARCHAR(100) NOT NULL, `licensePoolId` VARCHAR(100) NOT NULL, `clientId` varchar(255),
  `licenseKey` VARCHAR(1024), `notes` VARCHAR(1024), PRIMARY KEY (`license_on_client_id`),
  FOREIGN KEY (`softwareLicenseId`, `licensePoolId`) REFERENCES `SOFTWARE_LICENSE_TO_LICENSE_POOL` (`softwareLicenseId`, `licensePoolId`)) {INNODB};
CREATE TABLE `SOFTWARE_CONFIG` (`config_id` bigint NOT NULL AUTO_INCREMENT, `clientId` varchar(255) NOT NULL,
  `name` varchar(100) NOT NULL, `version` varchar(100) NOT NULL, `subVersion` varchar(100) NOT NULL,
  `language` varchar(10) NOT NULL, `architecture` varchar(3) NOT NULL, `uninstallString` varchar(200),
  `binaryName` varchar(100), `firstseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `lastseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, `state` TINYINT NOT NULL,
  `usageFrequency` integer NOT NULL DEFAULT -1, `lastUsed` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `licenseKey` VARCHAR(1024), PRIMARY KEY (`config_id`)) {MYISAM};
CREATE TABLE `HARDWARE_DEVICE_COMPUTER_SYSTEM` (`hardware_id` INTEGER NOT NULL AUTO_INCREMENT,
  `name` varchar(100), `vendor` varchar(50), `model` varchar(100), PRIMARY KEY (`hardware_id`)) {MYISAM};
CREATE TABLE `HARDWARE_CONFIG_COMPUTER_SYSTEM` (`config_id` INTEGER NOT NULL AUTO_INCREMENT,
  `hostId` varchar(255) NOT NULL, `hardware_id` INTEGER NOT NULL, `firstseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `lastseen` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, `state` TINYINT NOT NULL, `hostname` varchar(100),
  PRIMARY KEY (`config_id`)) {MYISAM};
"#
    )
}

fn data() -> String {
    format!(
        r#"
INSERT INTO HOST (hostId, type, description, hardwareAddress, opsiHostKey, depotLocalUrl, depotRemoteUrl,
  depotWebdavUrl, repositoryLocalUrl, repositoryRemoteUrl, isMasterDepot, masterDepotId, workbenchLocalUrl,
  workbenchRemoteUrl, created, lastSeen) VALUES
 ('{OLD}', 'OpsiConfigserver', 'Config server', '00:11:22:33:44:55', '0123456789abcdef0123456789abcdef',
  'file:///var/lib/opsi/depot', 'smb://opsi/opsi_depot', 'webdavs://OPSI.example.org:4447/depot',
  'file:///var/lib/opsi/repository', 'webdavs://opsi.example.org:4447/repository', 1, NULL,
  'file:///var/lib/opsi/workbench', 'smb://opsi/opsi_workbench', '2020-01-01 00:00:00', '2024-01-01 00:00:00'),
 ('depot2.example.org', 'OpsiDepotserver', 'Branch', NULL, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'file:///var/lib/opsi/depot', 'smb://depot2/opsi_depot', NULL, NULL, NULL, 0, '{OLD}', NULL, NULL,
  '2020-01-01 00:00:00', '2024-01-01 00:00:00'),
 ('{NEW}', 'OpsiDepotserver', 'stale test server', '00:11:22:33:44:66', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
  NULL, 'smb://newsrv/opsi_depot', NULL, NULL, NULL, 1, NULL, NULL, NULL, '2020-01-01 00:00:00', '2024-01-01 00:00:00');
INSERT INTO HOST (hostId, type, description, created, lastSeen) VALUES
 ('pc1.example.org', 'OpsiClient', 'uses {OLD}', '2021-01-01 00:00:00', '2024-01-01 00:00:00'),
 ('pc2.example.org', 'OpsiClient', NULL, '2021-01-01 00:00:00', '2024-01-01 00:00:00'),
 ('{LOOKALIKE}', 'OpsiClient', 'not the server', '2021-01-01 00:00:00', '2024-01-01 00:00:00');
INSERT INTO CONFIG VALUES ('clientconfig.depot.id', 'UnicodeConfig', 'ID of the opsi depot to use', 0, 1),
 ('clientconfig.configserver.url', 'UnicodeConfig', 'URL(s) of opsi config service(s) to use', 1, 1),
 ('opsiclientd.event_gui_startup.active', 'BoolConfig', NULL, 0, 0);
INSERT INTO CONFIG_VALUE (configId, value, isDefault) VALUES
 ('clientconfig.depot.id', '{OLD}', 1), ('clientconfig.depot.id', 'depot2.example.org', 0),
 ('clientconfig.depot.id', '{NEW}', 0), ('clientconfig.depot.id', '{LOOKALIKE}', 0),
 ('clientconfig.configserver.url', 'https://{OLD}:4447/rpc', 1),
 ('opsiclientd.event_gui_startup.active', '1', 1), ('opsiclientd.event_gui_startup.active', '0', 0);
INSERT INTO CONFIG_STATE (configId, objectId, `values`) VALUES
 ('clientconfig.depot.id', 'pc1.example.org', '["{OLD}"]'),
 ('clientconfig.depot.id', 'pc2.example.org', '["{NEW}"]'),
 ('clientconfig.depot.id', '{LOOKALIKE}', '["depot2.example.org"]'),
 ('clientconfig.configserver.url', 'pc1.example.org', '["https://OPSI.EXAMPLE.ORG:4447/rpc"]'),
 ('opsiclientd.event_gui_startup.active', '{OLD}', '[false]'),
 ('opsiclientd.event_gui_startup.active', '{NEW}', '[true]');
INSERT INTO PRODUCT (productId, productVersion, packageVersion, type, name, description) VALUES
 ('firefox', '115.0', '1', 'LocalbootProduct', 'Mozilla Firefox', 'Browser; see https://{OLD}/doc'),
 ('7zip', '23.01', '2', 'LocalbootProduct', '7-Zip', NULL);
INSERT INTO PRODUCT_ON_DEPOT VALUES ('firefox', '115.0', '1', '{OLD}', 'LocalbootProduct', 0),
 ('7zip', '23.01', '2', '{OLD}', 'LocalbootProduct', 0), ('firefox', '115.0', '1', 'depot2.example.org', 'LocalbootProduct', 0),
 ('firefox', '115.0', '1', '{NEW}', 'LocalbootProduct', 1);
INSERT INTO PRODUCT_PROPERTY VALUES ('firefox', '115.0', '1', 'homepage', 'UnicodeProductProperty', 'Start page', 0, 1);
INSERT INTO PRODUCT_PROPERTY_VALUE (productId, productVersion, packageVersion, propertyId, value, isDefault) VALUES
 ('firefox', '115.0', '1', 'homepage', 'https://{OLD}/start', 1),
 ('firefox', '115.0', '1', 'homepage', 'https://www.mozilla.org', 0);
INSERT INTO PRODUCT_ON_CLIENT (productId, clientId, productType, installationStatus, actionRequest) VALUES
 ('firefox', 'pc1.example.org', 'LocalbootProduct', 'installed', 'none'),
 ('firefox', '{LOOKALIKE}', 'LocalbootProduct', 'not_installed', 'setup');
INSERT INTO PRODUCT_PROPERTY_STATE (productId, propertyId, objectId, `values`) VALUES
 ('firefox', 'homepage', '{OLD}', '["https://{OLD}/start"]'),
 ('firefox', 'homepage', '{NEW}', '["https://stale"]'),
 ('firefox', 'homepage', 'pc1.example.org', '["https://www.mozilla.org"]');
INSERT INTO `GROUP` VALUES ('HostGroup', 'servers', NULL, 'the servers', NULL), ('ProductGroup', 'browsers', NULL, NULL, NULL);
INSERT INTO OBJECT_TO_GROUP (groupType, groupId, objectId) VALUES ('HostGroup', 'servers', '{OLD}'),
 ('HostGroup', 'servers', '{NEW}'), ('HostGroup', 'servers', 'pc1.example.org'), ('ProductGroup', 'browsers', 'firefox');
INSERT INTO LICENSE_CONTRACT (licenseContractId, type) VALUES ('c1', 'LicenseContract');
INSERT INTO SOFTWARE_LICENSE (softwareLicenseId, licenseContractId, type, boundToHost) VALUES
 ('l1', 'c1', 'OEMSoftwareLicense', '{NEW}'), ('l2', 'c1', 'OEMSoftwareLicense', '{OLD}'),
 ('l3', 'c1', 'RetailSoftwareLicense', NULL);
INSERT INTO LICENSE_POOL VALUES ('p1', 'LicensePool', NULL);
INSERT INTO SOFTWARE_LICENSE_TO_LICENSE_POOL VALUES ('l1', 'p1', 'KEY-1'), ('l2', 'p1', 'KEY-2'), ('l3', 'p1', 'KEY-3');
INSERT INTO LICENSE_ON_CLIENT (softwareLicenseId, licensePoolId, clientId) VALUES ('l1', 'p1', '{NEW}'),
 ('l3', 'p1', 'pc1.example.org');
INSERT INTO SOFTWARE_CONFIG (clientId, name, version, subVersion, language, architecture, state, firstseen, lastseen, lastUsed) VALUES
 ('{OLD}', 'opsi-server', '4.3', '', '', 'x64', 1, '2024-01-01', '2024-01-01', '2024-01-01'),
 ('{NEW}', 'stale', '1', '', '', 'x64', 1, '2024-01-01', '2024-01-01', '2024-01-01'),
 ('pc1.example.org', 'Firefox', '115.0', '', 'de', 'x64', 1, '2024-01-01', '2024-01-01', '2024-01-01');
INSERT INTO HARDWARE_DEVICE_COMPUTER_SYSTEM (name, vendor, model) VALUES ('opsi', 'Dell', 'R640');
INSERT INTO HARDWARE_CONFIG_COMPUTER_SYSTEM (hostId, hardware_id, state, hostname, firstseen, lastseen) VALUES
 ('{OLD}', 1, 1, 'opsi', '2024-01-01', '2024-01-01'), ('{NEW}', 1, 1, 'newsrv', '2024-01-01', '2024-01-01'),
 ('pc1.example.org', 1, 1, 'pc1', '2024-01-01', '2024-01-01');
"#
    )
}

const TABLES: &[&str] = &[
    "HOST",
    "CONFIG",
    "CONFIG_VALUE",
    "CONFIG_STATE",
    "PRODUCT",
    "PRODUCT_ON_DEPOT",
    "PRODUCT_PROPERTY",
    "PRODUCT_PROPERTY_VALUE",
    "PRODUCT_ON_CLIENT",
    "PRODUCT_PROPERTY_STATE",
    "GROUP",
    "OBJECT_TO_GROUP",
    "LICENSE_CONTRACT",
    "SOFTWARE_LICENSE",
    "LICENSE_POOL",
    "SOFTWARE_LICENSE_TO_LICENSE_POOL",
    "LICENSE_ON_CLIENT",
    "SOFTWARE_CONFIG",
    "HARDWARE_DEVICE_COMPUTER_SYSTEM",
    "HARDWARE_CONFIG_COMPUTER_SYSTEM",
];

/// Every row of `table`, sorted, as mysql prints it.
fn dump(db: &TestDb, table: &str) -> String {
    let mut rows: Vec<String> = db
        .sql(&format!("SELECT * FROM `{table}`;"))
        .lines()
        .map(String::from)
        .collect();
    rows.sort();
    rows.join("\n")
}

fn setup(server: &MysqlConfig) -> TestDb {
    let db = TestDb::create(server);
    db.sql(&schema());
    db.sql(&data());
    db
}

#[test]
fn renames_every_reference_and_removes_the_existing_host() {
    let Some(server) = server() else { return };
    let db = setup(&server);
    let before: Vec<String> = TABLES.iter().map(|t| dump(&db, t)).collect();

    let report = rename_in_mysql(&db.cfg, None, "NEWSRV.test.lan").unwrap();
    assert_eq!(report.old_id, OLD);
    assert_eq!(report.new_id, NEW);
    assert!(report.removed_existing_host);

    // No trace of OLD anywhere (the look-alike host aside).
    for table in TABLES {
        let text = dump(&db, table).to_lowercase().replace(LOOKALIKE, "#");
        assert!(!text.contains(OLD), "{table}:\n{text}");
    }

    let q = |sql: &str| db.sql(sql).trim_end().to_string();
    assert_eq!(
        q("SELECT hostId, type, IFNULL(description, '-'), IFNULL(hardwareAddress, '-'), opsiHostKey, \
           IFNULL(depotLocalUrl, '-'), IFNULL(depotRemoteUrl, '-'), IFNULL(depotWebdavUrl, '-'), \
           IFNULL(repositoryRemoteUrl, '-'), IFNULL(workbenchRemoteUrl, '-'), IFNULL(masterDepotId, '-') \
           FROM HOST WHERE type != 'OpsiClient' ORDER BY hostId;"),
        format!(
            "depot2.example.org\tOpsiDepotserver\tBranch\t-\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tfile:///var/lib/opsi/depot\t\
             smb://depot2/opsi_depot\t-\t-\t-\t{NEW}\n\
             {NEW}\tOpsiConfigserver\tConfig server\t00:11:22:33:44:55\t0123456789abcdef0123456789abcdef\t\
             file:///var/lib/opsi/depot\tsmb://newsrv/opsi_depot\twebdavs://{NEW}:4447/depot\t\
             webdavs://{NEW}:4447/repository\tsmb://newsrv/opsi_workbench\t-"
        )
    );
    assert_eq!(
        q("SELECT hostId, IFNULL(description, '-') FROM HOST WHERE type = 'OpsiClient' ORDER BY hostId;"),
        format!("{LOOKALIKE}\tnot the server\npc1.example.org\tuses {NEW}\npc2.example.org\t-")
    );
    assert_eq!(
        q("SELECT configId, value, isDefault FROM CONFIG_VALUE ORDER BY config_value_id;"),
        format!(
            "clientconfig.depot.id\t{NEW}\t1\nclientconfig.depot.id\tdepot2.example.org\t0\n\
             clientconfig.depot.id\t{LOOKALIKE}\t0\n\
             clientconfig.configserver.url\thttps://{NEW}:4447/rpc\t1\n\
             opsiclientd.event_gui_startup.active\t1\t1\nopsiclientd.event_gui_startup.active\t0\t0"
        )
    );
    assert_eq!(
        q("SELECT configId, objectId, `values` FROM CONFIG_STATE ORDER BY config_state_id;"),
        format!(
            "clientconfig.depot.id\tpc1.example.org\t[\"{NEW}\"]\n\
             clientconfig.depot.id\tpc2.example.org\t[\"{NEW}\"]\n\
             clientconfig.depot.id\t{LOOKALIKE}\t[\"depot2.example.org\"]\n\
             clientconfig.configserver.url\tpc1.example.org\t[\"https://{NEW}:4447/rpc\"]\n\
             opsiclientd.event_gui_startup.active\t{NEW}\t[false]"
        )
    );
    assert_eq!(
        q("SELECT productId, depotId, locked FROM PRODUCT_ON_DEPOT ORDER BY productId, depotId;"),
        format!("7zip\t{NEW}\t0\nfirefox\tdepot2.example.org\t0\nfirefox\t{NEW}\t0")
    );
    assert_eq!(
        q("SELECT objectId, `values` FROM PRODUCT_PROPERTY_STATE ORDER BY product_property_state_id;"),
        format!("{NEW}\t[\"https://{NEW}/start\"]\npc1.example.org\t[\"https://www.mozilla.org\"]")
    );
    assert_eq!(
        q("SELECT value, isDefault FROM PRODUCT_PROPERTY_VALUE ORDER BY product_property_id;"),
        format!("https://{NEW}/start\t1\nhttps://www.mozilla.org\t0")
    );
    assert_eq!(
        q("SELECT groupType, groupId, objectId FROM OBJECT_TO_GROUP ORDER BY object_to_group_id;"),
        format!("HostGroup\tservers\t{NEW}\nHostGroup\tservers\tpc1.example.org\nProductGroup\tbrowsers\tfirefox")
    );
    assert_eq!(
        q("SELECT softwareLicenseId, IFNULL(boundToHost, '-') FROM SOFTWARE_LICENSE ORDER BY 1;"),
        format!("l1\t-\nl2\t{NEW}\nl3\t-")
    );
    assert_eq!(
        q("SELECT softwareLicenseId, clientId FROM LICENSE_ON_CLIENT ORDER BY 1;"),
        "l3\tpc1.example.org"
    );
    assert_eq!(
        q("SELECT clientId, name FROM SOFTWARE_CONFIG ORDER BY config_id;"),
        format!("{NEW}\topsi-server\npc1.example.org\tFirefox")
    );
    assert_eq!(
        q("SELECT hostId, hostname FROM HARDWARE_CONFIG_COMPUTER_SYSTEM ORDER BY config_id;"),
        format!("{NEW}\topsi\npc1.example.org\tpc1")
    );
    assert_eq!(
        q("SELECT description FROM PRODUCT WHERE productId = 'firefox';"),
        format!("Browser; see https://{NEW}/doc")
    );

    // Tables without references are unchanged row for row.
    for (table, before) in TABLES.iter().zip(&before) {
        if [
            "CONFIG",
            "PRODUCT_PROPERTY",
            "GROUP",
            "LICENSE_CONTRACT",
            "LICENSE_POOL",
            "SOFTWARE_LICENSE_TO_LICENSE_POOL",
            "HARDWARE_DEVICE_COMPUTER_SYSTEM",
            "PRODUCT_ON_CLIENT",
        ]
        .contains(table)
        {
            assert_eq!(&dump(&db, table), before, "{table}");
        }
    }

    // Foreign keys hold again.
    assert_eq!(
        q("SELECT COUNT(*) FROM PRODUCT_ON_DEPOT d LEFT JOIN HOST h ON h.hostId = d.depotId WHERE h.hostId IS NULL;"),
        "0"
    );

    // Running again changes nothing.
    let all: Vec<String> = TABLES.iter().map(|t| dump(&db, t)).collect();
    let again = rename_in_mysql(&db.cfg, None, NEW).unwrap();
    assert!(!again.changed());
    assert_eq!(TABLES.iter().map(|t| dump(&db, t)).collect::<Vec<_>>(), all);
}

#[test]
fn refuses_bad_ids_unknown_and_ambiguous_servers() {
    let Some(server) = server() else { return };
    let db = setup(&server);
    let before: Vec<String> = TABLES.iter().map(|t| dump(&db, t)).collect();
    for bad in [
        "newsrv",
        "newsrv.lan",
        "new_srv.test.lan",
        "x'; DROP TABLE HOST; --.a.bc",
    ] {
        let err = rename_in_mysql(&db.cfg, None, bad).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad}: {err}");
        assert!(validate_server_id(bad).is_err());
    }
    let err = rename_in_mysql(&db.cfg, Some("pc1.example.org"), NEW).unwrap_err();
    assert!(
        err.to_string().contains("no depot pc1.example.org"),
        "{err}"
    );

    // Without a config server, two depots are ambiguous.
    db.sql(&format!(
        "UPDATE HOST SET type = 'OpsiDepotserver' WHERE hostId = '{OLD}';"
    ));
    let err = rename_in_mysql(&db.cfg, None, NEW).unwrap_err();
    assert!(err.to_string().contains("No config server found"), "{err}");
    db.sql(&format!(
        "UPDATE HOST SET type = 'OpsiConfigserver' WHERE hostId = '{OLD}';"
    ));

    assert_eq!(
        TABLES.iter().map(|t| dump(&db, t)).collect::<Vec<_>>(),
        before
    );
}

#[test]
fn explicit_old_id_and_a_new_id_that_did_not_exist() {
    let Some(server) = server() else { return };
    let db = setup(&server);
    db.sql(&format!(
        "DELETE FROM PRODUCT_ON_DEPOT WHERE depotId = '{NEW}'; DELETE FROM HOST WHERE hostId = '{NEW}';"
    ));
    let report = rename_in_mysql(&db.cfg, Some("Opsi.Example.Org"), "fresh.example.com").unwrap();
    assert!(!report.removed_existing_host);
    assert!(report.rows_updated > 0);
    assert_eq!(
        db.sql("SELECT hostId FROM HOST WHERE type = 'OpsiConfigserver';")
            .trim(),
        "fresh.example.com"
    );
    assert_eq!(
        db.sql("SELECT depotRemoteUrl FROM HOST WHERE type = 'OpsiConfigserver';")
            .trim(),
        "smb://fresh/opsi_depot"
    );
}
