//! Renaming the config server in a restored MySQL backend.
//!
//! Three rounds of SQL through [`crate::mysql::run_sql`]:
//! 1. read the schema (base tables and columns from `information_schema`) and the servers
//!    (`HOST` rows of type OpsiConfigserver / OpsiDepotserver); choose OLD;
//! 2. read, per text column, the distinct values that may mention OLD (a `LIKE` prefilter,
//!    case- and accent-insensitive, so a superset), plus the rows of the value-list tables
//!    that may become duplicates; decide in Rust, with the same [`IdReplacer`] as the file
//!    backend, what each value becomes;
//! 3. one transaction, foreign key checks off for the session: delete host NEW and the rows
//!    keyed by it, then `UPDATE t SET c = <new value> WHERE BINARY c = <old value>` for every
//!    changed value, fix OLD's short host name in the depot's remote URLs, drop duplicate list
//!    values, commit. Values travel as hex literals, so no text quoting or charset conversion
//!    is involved.
//!
//! If a statement fails, `mysql` stops and the connection closes: InnoDB tables roll back,
//! but the MyISAM audit tables (`SOFTWARE`, `SOFTWARE_CONFIG`, `HARDWARE_*`) keep what was
//! done before the failure. The backend must not be in use meanwhile (as during a restore):
//! rows written between rounds 2 and 3 are not renamed.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::mysql::{quote_identifier, quote_string, run_sql, MysqlConfig};
use crate::opsi::host_id::validate_server_id;
use crate::rename::replacer::{replace_url_host, rewrite_value, IdReplacer};
use crate::rename::RenameReport;

const TEXT_TYPES: &[&str] = &[
    "char",
    "varchar",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
];

/// The depot's remote URLs, where OLD's short host name is replaced too.
const URL_COLUMNS: &[&str] = &[
    "depotRemoteUrl",
    "depotWebdavUrl",
    "repositoryRemoteUrl",
    "workbenchRemoteUrl",
];

/// Tables holding one row per list element (possible values, with a default flag):
/// (table, row id, element key columns, value, default flag).
const VALUE_LISTS: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "CONFIG_VALUE",
        "config_value_id",
        &["configId"],
        "value",
        "isDefault",
    ),
    (
        "PRODUCT_PROPERTY_VALUE",
        "product_property_id",
        &[
            "productId",
            "productVersion",
            "packageVersion",
            "propertyId",
        ],
        "value",
        "isDefault",
    ),
];

/// Renames the config server `old` (when `None`: the only host of type OpsiConfigserver, else
/// the only OpsiDepotserver) to `new` in the database of `cfg`, removing an existing host
/// `new` and the rows keyed by it first.
pub fn rename_in_mysql(cfg: &MysqlConfig, old: Option<&str>, new: &str) -> Result<RenameReport> {
    let new = validate_server_id(new)?;
    let schema = Schema::read(cfg)?;
    if !schema.has("HOST", "hostId") || !schema.has("HOST", "type") {
        return Err(Error::Invalid(format!(
            "database {} has no opsi HOST table",
            cfg.database
        )));
    }
    let servers = read_servers(cfg)?;
    let old = match old {
        Some(old) => validate_server_id(old)?,
        None => choose_config_server(&servers)?,
    };
    if !servers.iter().any(|(id, _)| *id == old) {
        return Err(Error::Invalid(format!(
            "cannot rename the config server: no depot {old} in database {}",
            cfg.database
        )));
    }
    let mut report = RenameReport::new(&old, &new);
    if old == new {
        return Ok(report);
    }
    let replacer = IdReplacer::new(&old, &new);

    let mut script = Script::default();
    report.removed_existing_host = host_exists(cfg, &new)?;
    delete_host(&schema, &new, &mut script)?;
    rename_values(cfg, &schema, &replacer, &old, &mut script)?;
    fix_depot_urls(cfg, &schema, &replacer, &old, &new, &mut script)?;
    for list in VALUE_LISTS {
        dedupe_value_list(cfg, &schema, &replacer, &old, &new, list, &mut script)?;
    }
    let (deleted, updated) = script.run(cfg)?;
    report.rows_deleted = deleted;
    report.rows_updated = updated;
    Ok(report)
}

/// Base tables and their columns (name → data type), as the server names them.
struct Schema {
    tables: BTreeMap<String, Vec<(String, String)>>,
}

impl Schema {
    fn read(cfg: &MysqlConfig) -> Result<Schema> {
        let out = run_sql(
            cfg,
            Some(&cfg.database),
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, LOWER(c.DATA_TYPE) \
             FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
             ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' \
             ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;\n",
        )?;
        let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for line in out.lines() {
            let mut fields = line.split('\t');
            if let (Some(t), Some(c), Some(ty)) = (fields.next(), fields.next(), fields.next()) {
                tables
                    .entry(t.to_string())
                    .or_default()
                    .push((c.to_string(), ty.to_string()));
            }
        }
        Ok(Schema { tables })
    }

    /// The table's name as stored, matched case-insensitively.
    fn table(&self, name: &str) -> Option<&str> {
        self.tables
            .keys()
            .find(|t| t.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    fn column(&self, table: &str, column: &str) -> Option<&str> {
        let table = self.table(table)?;
        self.tables[table]
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(column))
            .map(|(c, _)| c.as_str())
    }

    fn has(&self, table: &str, column: &str) -> bool {
        self.column(table, column).is_some()
    }

    fn text_columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tables.iter().flat_map(|(t, cols)| {
            cols.iter()
                .filter(|(_, ty)| TEXT_TYPES.contains(&ty.as_str()))
                .map(move |(c, _)| (t.as_str(), c.as_str()))
        })
    }
}

/// The SQL of round 3, with counters of deleted and updated rows.
#[derive(Default)]
struct Script {
    sql: String,
}

impl Script {
    fn delete(&mut self, statement: String) {
        self.sql.push_str(&statement);
        self.sql
            .push_str(";\nSET @renamed_deleted = @renamed_deleted + ROW_COUNT();\n");
    }

    fn update(&mut self, statement: String) {
        self.sql.push_str(&statement);
        self.sql
            .push_str(";\nSET @renamed_updated = @renamed_updated + ROW_COUNT();\n");
    }

    fn run(&self, cfg: &MysqlConfig) -> Result<(u64, u64)> {
        let sql = format!(
            "SET @renamed_deleted = 0, @renamed_updated = 0;\n\
             SET SESSION FOREIGN_KEY_CHECKS = 0;\n\
             START TRANSACTION;\n{}COMMIT;\n\
             SET SESSION FOREIGN_KEY_CHECKS = 1;\n\
             SELECT @renamed_deleted, @renamed_updated;\n",
            self.sql
        );
        let out = run_sql(cfg, Some(&cfg.database), &sql)?;
        let mut fields = out.lines().last().unwrap_or("").split('\t');
        let mut count = || {
            fields
                .next()
                .and_then(|f| f.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok((count(), count()))
    }
}

fn hex_literal(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "''".to_string()
    } else {
        format!("X'{}'", hex::encode_upper(bytes))
    }
}

/// `%<id>%` for `LIKE ... ESCAPE '|'`, quoted.
fn like_pattern(id: &str) -> String {
    let mut pattern = String::from("%");
    for c in id.chars() {
        if matches!(c, '%' | '_' | '|') {
            pattern.push('|');
        }
        pattern.push(c);
    }
    pattern.push('%');
    quote_string(&pattern)
}

/// `<column> may mention <id>`, case- and accent-insensitively (a prefilter).
fn may_mention(column: &str, id: &str) -> String {
    format!(
        "CONVERT({column} USING utf8mb4) COLLATE utf8mb4_general_ci LIKE {} ESCAPE '|'",
        like_pattern(id)
    )
}

fn decode_hex(field: &str) -> Result<Vec<u8>> {
    hex::decode(field.trim())
        .map_err(|_| Error::Mysql(format!("unexpected output from mysql: {field:?}")))
}

/// Host ids (lower-cased) and types of the depots and config servers.
fn read_servers(cfg: &MysqlConfig) -> Result<Vec<(String, String)>> {
    let out = run_sql(
        cfg,
        Some(&cfg.database),
        "SELECT HEX(hostId), type FROM HOST \
         WHERE type IN ('OpsiConfigserver', 'OpsiDepotserver') ORDER BY hostId;\n",
    )?;
    let mut servers = Vec::new();
    for line in out.lines() {
        let (id, ty) = line.split_once('\t').unwrap_or((line, ""));
        let id = String::from_utf8_lossy(&decode_hex(id)?).to_lowercase();
        servers.push((id, ty.to_string()));
    }
    Ok(servers)
}

fn choose_config_server(servers: &[(String, String)]) -> Result<String> {
    let of_type = |ty: &str| -> Vec<&String> {
        servers
            .iter()
            .filter(|(_, t)| t.eq_ignore_ascii_case(ty))
            .map(|(id, _)| id)
            .collect()
    };
    let config_servers = of_type("OpsiConfigserver");
    let depots = of_type("OpsiDepotserver");
    match (config_servers.as_slice(), depots.as_slice()) {
        ([one], _) | ([], [one]) => Ok((*one).clone()),
        ([], []) => Err(Error::Invalid(
            "No config server found in backend: no host of type OpsiConfigserver or OpsiDepotserver"
                .into(),
        )),
        ([], several) => Err(Error::Invalid(format!(
            "No config server found in backend: no host of type OpsiConfigserver and several depots ({})",
            several.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        (several, _) => Err(Error::Invalid(format!(
            "several hosts of type OpsiConfigserver ({}): name the one to rename",
            several.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn host_exists(cfg: &MysqlConfig, id: &str) -> Result<bool> {
    let out = run_sql(
        cfg,
        Some(&cfg.database),
        &format!(
            "SELECT COUNT(*) FROM HOST WHERE hostId = {};\n",
            quote_string(id)
        ),
    )?;
    Ok(out.trim() != "0")
}

/// What python-opsi's `host_deleteObjects` removes for host `new`, for every table that has
/// such a column: rows whose `hostId`, `clientId`, `depotId` or `objectId` is `new` (only host
/// group memberships in OBJECT_TO_GROUP), `boundToHost` unset, and the HOST row itself.
/// Comparisons use the columns' `_ci` collation, like opsi.
fn delete_host(schema: &Schema, new: &str, script: &mut Script) -> Result<()> {
    let id = quote_string(new);
    let mut host_row = None;
    for (table, cols) in &schema.tables {
        let t = quote_identifier(table)?;
        for (column, ty) in cols {
            if !TEXT_TYPES.contains(&ty.as_str()) {
                continue;
            }
            let c = quote_identifier(column)?;
            let lower = column.to_ascii_lowercase();
            if table.eq_ignore_ascii_case("HOST") {
                if lower == "hostid" {
                    host_row = Some(format!("DELETE FROM {t} WHERE {c} = {id}"));
                }
                continue;
            }
            match lower.as_str() {
                "objectid" if table.eq_ignore_ascii_case("OBJECT_TO_GROUP") => {
                    let filter = match schema.column(table, "groupType") {
                        Some(g) => format!(" AND {} = 'HostGroup'", quote_identifier(g)?),
                        None => String::new(),
                    };
                    script.delete(format!("DELETE FROM {t} WHERE {c} = {id}{filter}"));
                }
                "hostid" | "clientid" | "depotid" | "objectid" => {
                    script.delete(format!("DELETE FROM {t} WHERE {c} = {id}"));
                }
                "boundtohost" => {
                    script.update(format!("UPDATE {t} SET {c} = NULL WHERE {c} = {id}"));
                }
                _ => {}
            }
        }
    }
    if let Some(statement) = host_row {
        script.delete(statement);
    }
    Ok(())
}

/// Every distinct text value mentioning OLD becomes its rewrite, table-wide.
fn rename_values(
    cfg: &MysqlConfig,
    schema: &Schema,
    replacer: &IdReplacer,
    old: &str,
    script: &mut Script,
) -> Result<()> {
    let columns: Vec<(&str, &str)> = schema.text_columns().collect();
    let mut sql = String::new();
    for (i, (table, column)) in columns.iter().enumerate() {
        let c = quote_identifier(column)?;
        sql.push_str(&format!(
            "SELECT DISTINCT {i}, HEX({c}) FROM {} WHERE {};\n",
            quote_identifier(table)?,
            may_mention(&c, old)
        ));
    }
    if sql.is_empty() {
        return Ok(());
    }
    let out = run_sql(cfg, Some(&cfg.database), &sql)?;
    for line in out.lines() {
        let Some((index, value)) = line.split_once('\t') else {
            continue;
        };
        let Some(&(table, column)) = index.parse::<usize>().ok().and_then(|i| columns.get(i))
        else {
            continue;
        };
        let value = decode_hex(value)?;
        if let Some((new_value, _)) = rewrite_value(replacer, &value) {
            let c = quote_identifier(column)?;
            script.update(format!(
                "UPDATE {} SET {c} = {} WHERE CAST({c} AS BINARY) = {}",
                quote_identifier(table)?,
                hex_literal(&new_value),
                hex_literal(&value)
            ));
        }
    }
    Ok(())
}

/// In the renamed depot's remote URLs, a URL host that is OLD's short host name becomes NEW's.
fn fix_depot_urls(
    cfg: &MysqlConfig,
    schema: &Schema,
    replacer: &IdReplacer,
    old: &str,
    new: &str,
    script: &mut Script,
) -> Result<()> {
    let columns: Vec<&str> = URL_COLUMNS
        .iter()
        .filter_map(|c| schema.column("HOST", c))
        .collect();
    if columns.is_empty() {
        return Ok(());
    }
    let mut select = Vec::new();
    for c in &columns {
        select.push(format!("IFNULL(HEX({}), '-')", quote_identifier(c)?));
    }
    let out = run_sql(
        cfg,
        Some(&cfg.database),
        &format!(
            "SELECT {} FROM HOST WHERE hostId = {};\n",
            select.join(", "),
            quote_string(old)
        ),
    )?;
    let Some(line) = out.lines().next() else {
        return Ok(());
    };
    let (old_short, new_short) = (short_name(old), short_name(new));
    for (column, field) in columns.iter().zip(line.split('\t')) {
        if field == "-" {
            continue;
        }
        let value = decode_hex(field)?;
        let renamed = rewrite_value(replacer, &value).map_or(value, |(v, _)| v);
        let Ok(text) = std::str::from_utf8(&renamed) else {
            continue;
        };
        if let Some(fixed) = replace_url_host(text, old_short, new_short) {
            script.update(format!(
                "UPDATE HOST SET {} = {} WHERE hostId = {}",
                quote_identifier(column)?,
                hex_literal(fixed.as_bytes()),
                quote_string(new)
            ));
        }
    }
    Ok(())
}

/// After the rename, a list that held OLD and NEW (or URLs with them) would hold NEW twice:
/// keep the first row of each (key, value), flagged default if any of them was.
fn dedupe_value_list(
    cfg: &MysqlConfig,
    schema: &Schema,
    replacer: &IdReplacer,
    old: &str,
    new: &str,
    &(table, id, keys, value, default): &(&str, &str, &[&str], &str, &str),
    script: &mut Script,
) -> Result<()> {
    let all_present = std::iter::once(id)
        .chain(keys.iter().copied())
        .chain([value, default])
        .all(|c| schema.has(table, c));
    if !all_present {
        return Ok(());
    }
    let t = quote_identifier(schema.table(table).unwrap_or(table))?;
    let (id, value, default) = (
        quote_identifier(id)?,
        quote_identifier(value)?,
        quote_identifier(default)?,
    );
    let key_list = keys
        .iter()
        .map(|k| quote_identifier(k).map(|k| format!("HEX({k})")))
        .collect::<Result<Vec<_>>>()?
        .join(", '/', ");
    let out = run_sql(
        cfg,
        Some(&cfg.database),
        &format!(
            "SELECT {id}, CONCAT({key_list}), HEX({value}), IFNULL({default}, 0) FROM {t} \
             WHERE {} OR {} ORDER BY {id};\n",
            may_mention(&value, old),
            may_mention(&value, new)
        ),
    )?;
    let mut groups: BTreeMap<(String, Vec<u8>), Vec<ListRow>> = BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [row, key, val, flag] = fields[..] else {
            continue;
        };
        let Ok(row) = row.parse::<i64>() else {
            continue;
        };
        let val = decode_hex(val)?;
        let (after, changed) = match rewrite_value(replacer, &val) {
            Some((v, _)) => (v, true),
            None => (val, false),
        };
        groups
            .entry((key.to_string(), after))
            .or_default()
            .push(ListRow {
                id: row,
                is_default: flag.trim() != "0",
                changed,
            });
    }
    for rows in groups.values() {
        if rows.len() < 2 || !rows.iter().any(|r| r.changed) {
            continue;
        }
        let keep = &rows[0];
        if !keep.is_default && rows.iter().any(|r| r.is_default) {
            script.update(format!(
                "UPDATE {t} SET {default} = 1 WHERE {id} = {}",
                keep.id
            ));
        }
        let others: Vec<String> = rows[1..].iter().map(|r| r.id.to_string()).collect();
        script.delete(format!(
            "DELETE FROM {t} WHERE {id} IN ({})",
            others.join(", ")
        ));
    }
    Ok(())
}

/// One row of a value-list table, grouped by (element key, value after the rename).
struct ListRow {
    id: i64,
    is_default: bool,
    changed: bool,
}

fn short_name(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(like_pattern("a_b.c.de"), "'%a|_b.c.de%'");
        assert_eq!(hex_literal(b"ab"), "X'6162'");
        assert_eq!(hex_literal(b""), "''");
    }

    #[test]
    fn config_server_choice() {
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            choose_config_server(&s(&[
                ("a.b.cd", "OpsiDepotserver"),
                ("c.b.cd", "OpsiConfigserver")
            ]))
            .unwrap(),
            "c.b.cd"
        );
        assert_eq!(
            choose_config_server(&s(&[("a.b.cd", "OpsiDepotserver")])).unwrap(),
            "a.b.cd"
        );
        assert!(choose_config_server(&s(&[
            ("a.b.cd", "OpsiDepotserver"),
            ("c.b.cd", "OpsiDepotserver")
        ]))
        .is_err());
        assert!(choose_config_server(&[]).is_err());
    }
}
