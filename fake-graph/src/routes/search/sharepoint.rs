//! SharePoint and OneDrive hits: drive items (trimmed per item, or once per drive the caller
//! can open), `listItem`, sites, drives and document libraries, ranked by matched terms then
//! recency.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::STANDARD};
use fixtures::{Drive, DriveItem, Site};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Hit;
use crate::{
    error::GraphError,
    kql::{Expr, KqlDoc, PropRef, PropValue, Query, SearchText},
    routes::{Ctx, files},
    store::{DriveIndex, ItemSearch},
    text, trimming,
};

/// Drive item properties inside the indexed item text (name, file text, author).
pub(super) fn item_in_text(name: &str) -> bool {
    matches!(name, "filename" | "title" | "author" | "createdby" | "modifiedby")
}

pub(super) struct DriveDoc<'a> {
    pub(super) item: &'a DriveItem,
    pub(super) search: &'a ItemSearch,
}

impl KqlDoc for DriveDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.search.text
    }
    fn prop_ref(&self, name: &str) -> PropRef<'_> {
        let it = self.item;
        match name {
            "filename" | "title" => PropRef::Text(&self.search.name),
            "filetype" | "fileextension" => {
                PropRef::Keyword(if it.is_folder { "" } else { &self.search.ext })
            }
            "path" => PropRef::Url(&it.web_url),
            "author" | "createdby" | "modifiedby" => PropRef::Text(&self.search.author_text),
            _ => PropRef::Owned(self.prop(name)),
        }
    }
    fn prop(&self, name: &str) -> PropValue {
        let it = self.item;
        match name {
            "filename" | "title" => PropValue::Text(self.search.name.clone()),
            "filetype" | "fileextension" => PropValue::Keyword(if it.is_folder {
                String::new()
            } else {
                self.search.ext.clone()
            }),
            "path" => PropValue::Url(it.web_url.clone()),
            "iscontainer" => PropValue::Bool(it.is_folder),
            "isdocument" => PropValue::Bool(!it.is_folder),
            "author" | "createdby" | "modifiedby" => {
                PropValue::Text(self.search.author_text.clone())
            }
            "lastmodifiedtime" | "lastmodified" | "write" => PropValue::Date(it.modified),
            "created" => PropValue::Date(it.created),
            _ => PropValue::Unknown,
        }
    }
}

struct SiteDoc<'a> {
    site: &'a Site,
    text: SearchText,
}

impl KqlDoc for SiteDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "path" => PropValue::Url(self.site.web_url.clone()),
            "title" => PropValue::Text(SearchText::new(&self.site.display_name)),
            "iscontainer" => PropValue::Bool(true),
            "isdocument" => PropValue::Bool(false),
            "contentclass" => PropValue::Keyword("STS_Site".into()),
            _ => PropValue::Unknown,
        }
    }
}

/// A drive (`drive` hits) or a site's document library (`list` hits).
struct LibraryDoc<'a> {
    drive: &'a Drive,
    /// The library's name (`drive`) or title and URL name (`list`).
    text: SearchText,
    content_class: &'static str,
}

impl KqlDoc for LibraryDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "title" | "filename" => PropValue::Text(SearchText::new(&self.drive.name)),
            "path" => PropValue::Url(self.drive.web_url.clone()),
            "iscontainer" => PropValue::Bool(true),
            "isdocument" => PropValue::Bool(false),
            "contentclass" => PropValue::Keyword(self.content_class.into()),
            "lastmodifiedtime" | "lastmodified" | "write" => {
                PropValue::Date(drive_dates(self.drive).1)
            }
            "created" => PropValue::Date(drive_dates(self.drive).0),
            _ => PropValue::Unknown,
        }
    }
}

/// A drive's creation and last-modification times: the model stores none, so they are taken
/// from its items (as `GET /drives/{id}` does).
fn drive_dates(d: &Drive) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let created = d.items.iter().map(|i| i.created).min().unwrap_or_default();
    let modified = d.items.iter().map(|i| i.modified).max().unwrap_or_default();
    (created, modified)
}

/// The URL name of a library (`Shared Documents`), from the last segment of its web URL.
fn library_url_name(d: &Drive) -> String {
    let last = d.web_url.trim_end_matches('/').rsplit('/').next().unwrap_or(&d.name);
    percent_encoding::percent_decode_str(last).decode_utf8_lossy().into_owned()
}

/// A library's list id: a GUID, derived stably from the drive because the model stores none.
fn list_id(d: &Drive) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("list:{}", d.id).as_bytes()).to_string()
}

/// The positions (ascending) of the items of drive `d` that match and the viewer may see (the
/// root is never a hit).
pub(super) fn drive_item_hits(
    query: &Query,
    viewer: &trimming::Viewer<'_>,
    tenant: &fixtures::Tenant,
    idx: &crate::store::TenantIndex,
    d: &Drive,
    di: &DriveIndex,
) -> Vec<u32> {
    // A drive the viewer can open shows every item: trimming is then one check per drive.
    let whole = trimming::can_see_drive(viewer, tenant, idx, d);
    let mut hits = di.postings.matching(d.items.len(), query, &item_in_text, |i| {
        query.matches(&DriveDoc { item: &d.items[i as usize], search: &di.search[i as usize] })
    });
    hits.retain(|i| {
        let it = &d.items[*i as usize];
        it.parent_id.is_some() && (whole || trimming::can_see_item(viewer, tenant, idx, d, di, it))
    });
    hits
}

/// A SharePoint search match, rendered only if it lands on the requested page.
enum Found<'a> {
    Item(&'a Drive, &'a DriveIndex, &'a DriveItem),
    Site(&'a Site),
    Drive(&'a Drive),
    List(&'a Drive),
}

/// The total and the `[from, from + size)` page of driveItem/listItem/site/drive/list hits. Matching runs
/// over the per-item text precomputed in the store index; JSON is built for the page only.
pub(super) fn sharepoint_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    kinds: &HashSet<&str>,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let viewer = ctx.viewer();
    let terms = expr.highlight_terms();
    let score = |text: &SearchText| terms.iter().filter(|(t, p)| text.has_token(t, *p)).count();
    let mut scored: Vec<(usize, chrono::DateTime<chrono::Utc>, Found<'_>)> = Vec::new();
    let query = Query::new(expr);
    let want_items = kinds.contains("driveitem") || kinds.contains("listitem");
    if want_items {
        for d in &tenant.content.drives {
            let Some(di) = idx.drives.get(&d.id) else { continue };
            for i in drive_item_hits(&query, &viewer, tenant, idx, d, di) {
                let it = &d.items[i as usize];
                scored.push((
                    score(&di.search[i as usize].text),
                    it.modified,
                    Found::Item(d, di, it),
                ));
            }
        }
    }
    if kinds.contains("site") {
        for s in tenant.content.sites.iter().filter(|s| trimming::can_see_site(&viewer, s)) {
            let text = SearchText::new(&format!("{} {} {}", s.name, s.display_name, s.description));
            let doc = SiteDoc { site: s, text };
            if !query.matches(&doc) {
                continue;
            }
            scored.push((
                score(&doc.text),
                chrono::DateTime::<chrono::Utc>::MIN_UTC,
                Found::Site(s),
            ));
        }
    }
    // `drive` hits: the OneDrives and libraries the caller can open. Graph only finds a drive
    // by a term of its name ("`*` is not supported"), so a match also needs a name term.
    if kinds.contains("drive") {
        for d in tenant
            .content
            .drives
            .iter()
            .filter(|d| trimming::can_see_drive(&viewer, tenant, idx, d))
        {
            let doc = LibraryDoc {
                drive: d,
                text: SearchText::new(&d.name),
                content_class: "STS_List_DocumentLibrary",
            };
            let named = terms.iter().any(|(t, p)| doc.text.has_token(t, *p));
            if !named || !query.matches(&doc) {
                continue;
            }
            scored.push((score(&doc.text), drive_dates(d).1, Found::Drive(d)));
        }
    }
    // `list` hits: the document libraries of the sites the caller is a member of (OneDrives
    // are drives, not site lists, here).
    if kinds.contains("list") {
        for d in tenant.content.drives.iter().filter(|d| {
            d.drive_type == fixtures::DriveType::DocumentLibrary
                && trimming::can_see_drive(&viewer, tenant, idx, d)
        }) {
            let text = SearchText::new(&format!("{} {}", d.name, library_url_name(d)));
            let doc = LibraryDoc { drive: d, text, content_class: "STS_List_DocumentLibrary" };
            if !query.matches(&doc) {
                continue;
            }
            scored.push((score(&doc.text), drive_dates(d).1, Found::List(d)));
        }
    }
    // Stable sort: equal keys keep scan order (drive items, sites, drives, lists).
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let total = scored.len();
    let as_list_item = !kinds.contains("driveitem");
    let page = scored
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(_, _, found)| match found {
            Found::Item(d, di, it) => {
                let mut resource = files::item_json(ctx, tenant, d, di, it);
                if let Value::Object(map) = &mut resource {
                    map.remove("@microsoft.graph.downloadUrl");
                    map.remove("eTag");
                    map.remove("cTag");
                }
                resource["@odata.type"] = json!(if as_list_item {
                    "#microsoft.graph.listItem"
                } else {
                    "#microsoft.graph.driveItem"
                });
                Hit {
                    hit_id: STANDARD
                        .encode(&Sha256::digest(format!("{}|{}", d.id, it.id).as_bytes())[..20]),
                    summary_text: format!("{} {}", it.name, text::file_text(it)),
                    resource,
                }
            }
            Found::Site(s) => Hit {
                hit_id: s.id.clone(),
                summary_text: format!("{} {}", s.display_name, s.description),
                resource: json!({
                    "@odata.type": "#microsoft.graph.site",
                    "id": s.id,
                    "createdDateTime": "2019-06-10T06:37:43Z",
                    "description": s.description,
                    "lastModifiedDateTime": "2020-08-30T06:41:56Z",
                    "name": s.name,
                    "displayName": s.display_name,
                    "webUrl": s.web_url,
                }),
            },
            Found::Drive(d) => {
                let (created, modified) = drive_dates(d);
                Hit {
                    hit_id: d.id.clone(),
                    summary_text: d.name.clone(),
                    resource: json!({
                        "@odata.type": "#microsoft.graph.drive",
                        "id": d.id,
                        "createdDateTime": crate::odata::dt(created),
                        "lastModifiedDateTime": crate::odata::dt(modified),
                        "description": "",
                        "name": d.name,
                        "webUrl": d.web_url,
                        "driveType": match d.drive_type {
                            fixtures::DriveType::Business => "business",
                            fixtures::DriveType::DocumentLibrary => "documentLibrary",
                        },
                    }),
                }
            }
            Found::List(d) => {
                let id = list_id(d);
                Hit {
                    hit_id: id.clone(),
                    summary_text: String::new(),
                    resource: json!({
                        "@odata.type": "#microsoft.graph.list",
                        "id": id,
                        "displayName": d.name,
                        "name": library_url_name(d),
                        "description": "",
                        "createdDateTime": crate::odata::dt(drive_dates(d).0),
                        "lastModifiedDateTime": crate::odata::dt(drive_dates(d).1),
                        "webUrl": format!("{}/Forms/AllItems.aspx", d.web_url),
                        "parentReference": {"siteId": files::site_id_of(d)},
                        "list": {"template": "documentLibrary", "hidden": false, "contentTypesEnabled": false},
                    }),
                }
            }
        })
        .collect();
    Ok((total, page))
}
