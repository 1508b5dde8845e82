//! Fetch: the resolved packages into the cache, verified while streaming, in an order that
//! lets layering start early.

use std::path::PathBuf;

use futures_util::StreamExt as _;

use super::{Context, OpsError};
use crate::fetch::download::{Download, Downloader};
use crate::resolve::Resolution;

/// Packages fetched at once.
const CONCURRENCY: usize = 4;

/// One download per resolved package: every mirror of its repository, its checksum and size.
pub fn downloads(res: &Resolution) -> Vec<Download> {
    res.packages
        .iter()
        .map(|p| Download {
            name: p.nevra.clone(),
            urls: std::iter::once(&p.base_url)
                .chain(&p.mirrors)
                .map(|b| crate::repo::join_url(b, &p.href))
                .collect(),
            bases: std::iter::once(&p.base_url)
                .chain(&p.mirrors)
                .cloned()
                .collect(),
            checksum: p.checksum.clone(),
            size: p.size,
        })
        .collect()
}

/// The packages that fix the image's layout and owners: the base packages, or every package
/// when there is no base.
pub fn layout_packages(res: &Resolution) -> Vec<usize> {
    let base: Vec<usize> = (0..res.packages.len())
        .filter(|&i| res.packages[i].base)
        .collect();
    if base.is_empty() {
        (0..res.packages.len()).collect()
    } else {
        base
    }
}

/// Download order: the layout packages first (layering waits for them), then the largest.
pub fn order(items: &[Download], layout: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (!layout.contains(&i), std::cmp::Reverse(items[i].size), i));
    order
}

/// Fetches `items` in `order` (or finds them in the cache), a few at a time, and hands each
/// verified file to `arrived` as it lands. The first failure stops the fetch.
pub fn fetch_packages(
    ctx: &Context,
    items: &[Download],
    order: Vec<usize>,
    mut arrived: impl FnMut(usize, PathBuf) -> Result<(), OpsError>,
) -> Result<(), OpsError> {
    let downloader = Downloader {
        transport: &ctx.transport,
        cache: &ctx.cache,
        concurrency: CONCURRENCY,
        reporter: ctx.reporter.as_ref(),
        offline: ctx.options.offline,
    };
    ctx.reporter
        .start("download", items.iter().map(|i| i.size).sum(), true);
    let fetched = ctx.block_on(async {
        let mut stream = futures_util::stream::iter(order)
            .map(|i| {
                let (d, item) = (&downloader, &items[i]);
                async move { (i, d.fetch(item).await) }
            })
            .buffer_unordered(CONCURRENCY);
        while let Some((i, r)) = stream.next().await {
            arrived(i, r?)?;
        }
        Ok::<(), OpsError>(())
    });
    ctx.reporter.finish();
    fetched
}
