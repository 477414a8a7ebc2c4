//! `stats`: repository size on disk, logical size of all snapshots, dedup ratio, and what each
//! snapshot added; `stats SNAPSHOT` also what each product of its bulk data costs (its files,
//! their size, the stored bytes of the chunks only it uses within the snapshot, and of those
//! it shares with other products).

use clap::Args;

use crate::cli::json::{self, BulkCosts, ProductCost, Stats};
use crate::cli::{human, repo, Global};
use crate::layout::{self, DataPart};
use crate::member::Member;
use crate::store::Repository;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// A snapshot (`latest` or an id prefix) whose bulk data to break down per product: the
    /// first directory level of the depot, workbench and package repository; TFTP as a whole.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    /// Print the figures as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

fn disk_usage(path: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

pub(super) fn stats(g: &Global, a: StatsArgs) -> anyhow::Result<i32> {
    let r = repo::open(g)?;
    let list = r.snapshots()?;
    // The export cache is not backup data (it can be deleted at any time): counted apart.
    // A remote repository's size is that of its packs (its snapshot files are small).
    let cache = disk_usage(&r.root().join("cache"));
    let disk = if r.is_remote() {
        r.pack_bytes()?
    } else {
        disk_usage(r.root()).saturating_sub(cache)
    };
    let logical: u64 = list.iter().map(|s| s.size).sum();
    let stats = Stats {
        schema: json::schema("stats"),
        snapshots: list.len(),
        disk_bytes: disk,
        export_cache_bytes: cache,
        logical_bytes: logical,
        dedup_ratio: if disk == 0 {
            0.0
        } else {
            logical as f64 / disk as f64
        },
        per_snapshot: list.iter().map(json::Snapshot::from).collect(),
        bulk_data: a
            .snapshot
            .as_deref()
            .map(|id| bulk_costs(&r, id))
            .transpose()?,
    };
    if a.json {
        json::print(&stats)?;
        return Ok(0);
    }
    say!("snapshots:          {}", stats.snapshots);
    say!("size on disk:       {}", human::bytes(disk));
    if cache > 0 {
        say!(
            "export cache:       {} (compressed archive segments for faster exports; may be deleted)",
            human::bytes(cache)
        );
    }
    say!(
        "logical size:       {} (all snapshots as full archives, uncompressed)",
        human::bytes(logical)
    );
    say!("dedup+compression:  {:.1}x", stats.dedup_ratio);
    say!();
    say!(
        "{:<12}  {:<19}  {:>10}  {:>10}",
        "ID",
        "TIME",
        "SIZE",
        "ADDED"
    );
    for s in &list {
        say!(
            "{:<12}  {:<19}  {:>10}  {:>10}",
            human::short(&s.id),
            crate::logging::local_time(s.time),
            human::bytes(s.size),
            human::bytes(s.added)
        );
    }
    if let Some(b) = &stats.bulk_data {
        print_bulk(b);
    }
    Ok(0)
}

/// The group of a bulk data member: `depot/win10`, `tftp`; none for anything else.
fn product_of(m: &Member) -> Option<String> {
    let (part, product) = layout::data_unit(&m.path)?;
    match product {
        Some(p) => Some(format!("{}/{p}", part.name())),
        None if part == DataPart::Tftp => Some(part.name().to_string()),
        None => None, // the depot's top directory itself: no product's
    }
}

fn bulk_costs(r: &Repository, id: &str) -> anyhow::Result<BulkCosts> {
    let info = r.resolve(id)?;
    let costs = r.group_costs(&info.id, &product_of)?;
    let mut products: Vec<ProductCost> = costs
        .groups
        .into_iter()
        .map(|g| {
            let (part, product) = match g.key.split_once('/') {
                Some((part, p)) => (part.to_string(), Some(p.to_string())),
                None => (g.key, None),
            };
            ProductCost {
                part,
                product,
                files: g.files,
                size: g.size,
                own_bytes: g.own_bytes,
                shared_bytes: g.shared_bytes,
            }
        })
        .collect();
    // The parts in their usual order, products by name.
    let rank = |p: &str| DataPart::ALL.iter().position(|d| d.name() == p);
    products.sort_by(|a, b| (rank(&a.part), &a.product).cmp(&(rank(&b.part), &b.product)));
    let own: u64 = products.iter().map(|p| p.own_bytes).sum();
    Ok(BulkCosts {
        snapshot: json::Snapshot::from(&info),
        products,
        shared_bytes: costs.shared_bytes,
        stored_bytes: own + costs.shared_bytes,
    })
}

fn print_bulk(b: &BulkCosts) {
    say!();
    if b.products.is_empty() {
        say!(
            "snapshot {} holds no bulk data (depot, workbench, repository, tftp)",
            human::short(&b.snapshot.info.id)
        );
        return;
    }
    say!(
        "bulk data of snapshot {}: OWN = stored bytes of the chunks only this product uses \
         in the snapshot, SHARED = of those it shares with other products",
        human::short(&b.snapshot.info.id)
    );
    say!(
        "{:<10}  {:<30}  {:>7}  {:>10}  {:>10}  {:>10}",
        "PART",
        "PRODUCT",
        "FILES",
        "SIZE",
        "OWN",
        "SHARED"
    );
    for p in &b.products {
        say!(
            "{:<10}  {:<30}  {:>7}  {:>10}  {:>10}  {:>10}",
            p.part,
            p.product.as_deref().unwrap_or("-"),
            p.files,
            human::bytes(p.size),
            human::bytes(p.own_bytes),
            human::bytes(p.shared_bytes)
        );
    }
    say!(
        "shared between products: {} (counted once); bulk data stored: {}",
        human::bytes(b.shared_bytes),
        human::bytes(b.stored_bytes)
    );
}
