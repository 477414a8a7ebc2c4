//! `restore --new-server-id NEW`: after a restore, the config server's host id becomes NEW
//! everywhere in the restored backend data, and a host that already had the id NEW is removed
//! first. Admins use it to move opsi to new hardware or to build a test server from production.
//!
//! - [`validate_server_id`] (from `opsi::host_id`), to call before anything is restored;
//! - [`replacer`] says what counts as a reference to a host id inside text, and its replacement;
//! - [`line_rewrite`] does atomic, streaming, line-by-line rewriting of a file;
//! - [`file_backend`] holds [`rename_in_file_backend`];
//! - [`mysql_backend`] holds [`rename_in_mysql`].
//!
//! # What the original does (python-opsi 4.3, read for facts)
//!
//! `OPSI/Util/Task/Backup.py`, `restore()`: `new_server_id = forceHostId(new_server_id)` first;
//! after the restore: `cleanupBackend()`, then through a BackendManager: the config server is
//! `host_getObjects(type='OpsiConfigserver')`, else the only `OpsiDepotserver`; else
//! "No config server found in backend". A host with id NEW that is not the config server is
//! deleted (`host_deleteObjects`), then `host_renameOpsiDepotserver(oldId, newId)`. Any failure
//! becomes "Failed to rename config server to 'NEW': ...".
//!
//! `OPSI/Backend/Base/Extended.py`, `host_renameOpsiDepotserver` (refuses if NEW exists):
//! - ProductOnDepot `depotId` OLD → NEW;
//! - every ProductProperty and Config: an element OLD of `possibleValues`/`defaultValues` → NEW;
//! - ProductPropertyStates and ConfigStates of `objectId` OLD: objectId → NEW, element OLD of
//!   `values` → NEW;
//! - the depot itself: id → NEW, and in `repositoryRemoteUrl`, `depotRemoteUrl`,
//!   `depotWebdavUrl`, `workbenchRemoteUrl`: substring OLD → NEW, then substring OLD's short
//!   host name → NEW's (local URLs untouched); then the old host is deleted (which also drops
//!   its group memberships and its hardware audit instead of moving them);
//! - configs `clientconfig.configserver.url` and `clientconfig.depot.id`: substring OLD → NEW in
//!   default and possible values, and in the values of *all* their ConfigStates (every client
//!   assigned to the depot, and URLs like `https://OLD:4447/rpc`);
//! - other depots' `masterDepotId` OLD → NEW.
//!
//! `OPSI/Backend/Base/ConfigData.py`, `host_deleteObjects`: removes the host from host groups
//! (ObjectToGroup, groupType HostGroup), its ProductOnClients (clients) or ProductOnDepots
//! (depots), ProductPropertyStates and ConfigStates with its objectId, its software audit
//! (clients), hardware audit, LicenseOnClients (clients), and unbinds SoftwareLicenses
//! (`boundToHost` → NULL).
//!
//! Host ids are compared case-insensitively: `forceHostId` lower-cases, MySQL uses
//! `utf8_general_ci`, the file backend lower-cases file names.
//!
//! ## Where host ids live in the file backend (`OPSI/Backend/File.py`)
//! - `depots/<id>.ini`: one per depot/config server: `[depotserver]` (description, notes,
//!   hardwareaddress, ipaddress, inventorynumber, network, ismasterdepot, masterdepotid),
//!   `[depotshare]` (remoteurl, webdavurl, localurl), `[repository]` (remoteurl, localurl,
//!   maxbandwidth), `[workbench]` (localurl, remoteurl), `[<productId>-state]` (ProductOnDepot),
//!   `[generalconfig]` (the depot's ConfigStates, JSON values), `[<productId>-install]` (its
//!   ProductPropertyStates, JSON values);
//! - `clients/<id>.ini`: `[info]`, `[generalconfig]` (ConfigStates, e.g.
//!   `clientconfig.depot.id = ["<depot>"]`), `[<productId>-state]`,
//!   `[localboot_product_states]`/`[netboot_product_states]`, `[<productId>-install]`;
//!   there is no section named after a depot;
//! - `config.ini`: a section per config id with JSON `possiblevalues`/`defaultvalues`;
//! - `clientgroups.ini`: a section per host group, options `<hostId> = 1`;
//! - `audit/<hostId>.hw` and `.sw` (host id only in the file name), `templates/*.ini`
//!   (client templates), `products/*.localboot|netboot` (control files; property values);
//! - the host key file (`hostKeyFile`, /etc/opsi/pckeys): `<hostId>:<key>` lines;
//! - which depot is the config server is not stored: it is the one whose id equals the local
//!   FQDN (`forceHostId(getfqdn())`), see [`file_backend::find_config_server`].
//!
//! ## Where host ids live in the MySQL backend (`OPSI/Backend/SQL.py`, `MySQL.py`)
//! - `HOST.hostId` (PK), `HOST.type` ('OpsiClient', 'OpsiDepotserver', 'OpsiConfigserver'),
//!   `HOST.masterDepotId`, URLs in `depotRemoteUrl`, `depotWebdavUrl`, `repositoryRemoteUrl`,
//!   `workbenchRemoteUrl` (and local URLs);
//! - `PRODUCT_ON_DEPOT.depotId` (PK part, FK → HOST), `PRODUCT_ON_CLIENT.clientId` (FK → HOST);
//! - `CONFIG_VALUE.value` (one row per possible value, `isDefault` flag) e.g. of
//!   `clientconfig.depot.id`, `clientconfig.configserver.url`;
//! - `CONFIG_STATE.objectId` and `CONFIG_STATE.values` (JSON list text);
//! - `PRODUCT_PROPERTY_VALUE.value`, `PRODUCT_PROPERTY_STATE.objectId` and `.values` (JSON);
//! - `OBJECT_TO_GROUP.objectId` (with `groupType` 'HostGroup'); `SOFTWARE_LICENSE.boundToHost`;
//!   `LICENSE_ON_CLIENT.clientId`; `SOFTWARE_CONFIG.clientId`; `HARDWARE_CONFIG_<class>.hostId`;
//! - `SOFTWARE`, `SOFTWARE_CONFIG`, `HARDWARE_*` are MyISAM (not transactional), the rest InnoDB.
//!
//! # What we do differently, and why
//! - Every reference is renamed, not only the places listed above: any text (file line, text
//!   column) holding OLD as a whole host name (see [`replacer`]) gets NEW, so no trace of OLD
//!   remains (descriptions, other configs' states, product control files, group memberships,
//!   the config server's own audit data). A substring that is part of another name
//!   (`pc.OLD`, `OLD.au`) is left alone, unlike Python's plain `str.replace`.
//! - OLD's short host name is replaced only as the host part of the depot's own remote URLs.
//! - Lists that would hold NEW twice afterwards (NEW was a depot too) are deduplicated.
//! - OLD == NEW is a successful no-op (Python fails: "host already exists").
//! - When several hosts have type OpsiConfigserver we refuse rather than take the first.
//! - `cleanupBackend()` is not run.

pub mod file_backend;
pub mod line_rewrite;
pub mod mysql_backend;
pub mod replacer;

pub use crate::opsi::host_id::validate_server_id;
pub use file_backend::{rename_in_file_backend, rename_in_file_backend_with, FileRenameOptions};
pub use mysql_backend::rename_in_mysql;

/// What a rename did. File counts are for the file backend, row counts for MySQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenameReport {
    /// The config server's id before (normalized).
    pub old_id: String,
    /// Its id now.
    pub new_id: String,
    /// A host with the new id existed and was removed first.
    pub removed_existing_host: bool,
    /// Files of the removed host NEW.
    pub files_removed: usize,
    /// Lines of the removed host NEW (group memberships, host key).
    pub lines_removed: usize,
    /// Files named after OLD, now named after NEW.
    pub files_renamed: usize,
    /// Other files rewritten because they mentioned OLD.
    pub files_rewritten: usize,
    /// References replaced in files (file backend).
    pub references_replaced: usize,
    /// Rows deleted (host NEW and what referenced it, duplicates after the rename).
    pub rows_deleted: u64,
    /// Rows changed by the rename.
    pub rows_updated: u64,
}

impl RenameReport {
    fn new(old: &str, new: &str) -> RenameReport {
        RenameReport {
            old_id: old.to_string(),
            new_id: new.to_string(),
            ..RenameReport::default()
        }
    }

    /// Whether anything was changed (false when OLD already was NEW).
    pub fn changed(&self) -> bool {
        self.old_id != self.new_id
    }
}
