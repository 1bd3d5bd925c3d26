//! OneDrive and SharePoint: drives, items, children, drive search, sites, sharing links, and
//! `/content` answering 302 to a short-lived, HMAC-signed, pre-authenticated URL on
//! `/_download/…` (which needs no bearer and supports `Range`), as Graph does (graph.md §10).

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fixtures::{Drive, DriveItem, DriveType, Site, Tenant};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Ctx, json};
use crate::{
    DownloadRecord, Shared,
    auth::perms,
    error::{GraphError, GraphResult},
    odata,
    store::{DriveIndex, TenantIndex},
    trimming,
};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn person(tenant: &Tenant, oid: Uuid) -> Value {
    match tenant.users.iter().find(|u| u.oid == oid) {
        Some(u) => {
            json!({"user": {"email": u.mail, "id": u.oid.to_string(), "displayName": u.display_name}})
        }
        None => json!({"user": {"displayName": "System Account"}}),
    }
}

fn drive_type(d: &Drive) -> &'static str {
    match d.drive_type {
        DriveType::Business => "business",
        DriveType::DocumentLibrary => "documentLibrary",
    }
}

fn item_path(drive: &Drive, di: &DriveIndex, item: &DriveItem) -> String {
    let mut names = Vec::new();
    let mut cur = item.parent_id.as_ref().and_then(|p| di.items.get(p)).map(|p| &drive.items[*p]);
    while let Some(it) = cur {
        if it.parent_id.is_none() {
            break;
        }
        names.push(it.name.clone());
        cur = it.parent_id.as_ref().and_then(|p| di.items.get(p)).map(|p| &drive.items[*p]);
    }
    names.reverse();
    if names.is_empty() {
        "/drive/root:".to_owned()
    } else {
        format!("/drive/root:/{}", names.join("/"))
    }
}

/// Signs a download URL for an item, valid for the server's download TTL.
pub fn download_url(
    shared: &Shared,
    tid: Uuid,
    drive: &str,
    item: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let exp = now.timestamp() + shared.download_ttl.as_secs() as i64;
    let payload = URL_SAFE_NO_PAD.encode(format!("{tid}|{drive}|{item}|{exp}"));
    format!("{}/_download/{payload}.{}", shared.download_base(), sign(shared, &payload))
}

fn sign(shared: &Shared, payload: &str) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&shared.download_key)
        .expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn item_json(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    drive: &Drive,
    di: &DriveIndex,
    item: &DriveItem,
) -> Value {
    let mut v = json!({
        "createdDateTime": odata::dt(item.created),
        "eTag": format!("\"{{{}}},1\"", item.id),
        "id": item.id,
        "lastModifiedDateTime": odata::dt(item.modified),
        "name": item.name,
        "webUrl": item.web_url,
        "cTag": format!("\"c:{{{}}},1\"", item.id),
        "size": item.bytes.as_ref().map(Vec::len).unwrap_or(0),
        "createdBy": person(tenant, item.created_by),
        "lastModifiedBy": person(tenant, item.modified_by),
        "parentReference": {"driveType": drive_type(drive), "driveId": drive.id},
        "fileSystemInfo": {"createdDateTime": odata::dt(item.created), "lastModifiedDateTime": odata::dt(item.modified)},
    });
    v["parentReference"]["siteId"] = json!(site_id_of(drive));
    match &item.parent_id {
        Some(parent) => {
            v["parentReference"]["id"] = json!(parent);
            v["parentReference"]["path"] = json!(item_path(drive, di, item));
        }
        None => v["root"] = json!({}),
    }
    if item.is_folder {
        let count = di.children.get(&item.id).map(Vec::len).unwrap_or(0);
        v["folder"] = json!({"childCount": count});
    } else {
        v["file"] = json!({
            "mimeType": item.mime_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            "hashes": {"quickXorHash": URL_SAFE_NO_PAD.encode(&item.id.as_bytes()[..item.id.len().min(20)])},
        });
        v["@microsoft.graph.downloadUrl"] =
            json!(download_url(ctx.shared, ctx.caller.tid, &drive.id, &item.id, ctx.now));
    }
    v
}

/// The drive's site id; a OneDrive lives in the owner's personal site, whose id is derived
/// (stably) from the drive because the model does not store one.
pub fn site_id_of(drive: &Drive) -> String {
    match &drive.site_id {
        Some(s) => s.clone(),
        None => {
            let host = drive
                .web_url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("contoso-my.sharepoint.com");
            let a = Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("site:{}", drive.id).as_bytes());
            let b = Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("web:{}", drive.id).as_bytes());
            format!("{host},{a},{b}")
        }
    }
}

fn drive_json(tenant: &Tenant, idx: &TenantIndex, d: &Drive) -> Value {
    let created = d.items.iter().map(|i| i.created).min().unwrap_or_default();
    let modified = d.items.iter().map(|i| i.modified).max().unwrap_or_default();
    let owner = match (d.owner, trimming::site_of(tenant, idx, d)) {
        (Some(o), _) => person(tenant, o),
        (None, Some(site)) => json!({"group": {"displayName": site.display_name}}),
        (None, None) => json!({"user": {"displayName": "System Account"}}),
    };
    let mut v = json!({
        "createdDateTime": odata::dt(created),
        "description": "",
        "id": d.id,
        "lastModifiedDateTime": odata::dt(modified),
        "name": d.name,
        "webUrl": d.web_url,
        "driveType": drive_type(d),
        "createdBy": {"user": {"displayName": "System Account"}},
        "owner": owner,
        "quota": {"deleted": 0, "remaining": 1_099_511_627_776_u64, "state": "normal", "total": 1_099_511_627_776_u64, "used": 0},
    });
    if let Some(site) = &d.site_id {
        v["sharePointIds"] = json!({"siteId": site});
    }
    v
}

fn site_json(s: &Site) -> Value {
    let host = s.id.split(',').next().unwrap_or_default();
    json!({
        "createdDateTime": "2019-06-10T06:37:43Z",
        "description": s.description,
        "id": s.id,
        "lastModifiedDateTime": "2020-08-30T06:41:56Z",
        "name": s.name,
        "webUrl": s.web_url,
        "displayName": s.display_name,
        "root": {},
        "siteCollection": {"hostname": host},
    })
}

/// The permission row for reading in this drive: own OneDrive needs only `Files.Read`.
fn drive_perm(ctx: &Ctx<'_>, d: &Drive) -> Result<(), GraphError> {
    if d.drive_type == DriveType::Business && d.owner == Some(ctx.caller.oid) {
        ctx.caller.require(&perms::OWN_FILES)
    } else {
        ctx.caller.require(&perms::ALL_FILES)
    }
}

pub fn my_drive(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::OWN_FILES)?;
    let (tenant, idx) = ctx.tenant()?;
    let id = idx.onedrive_by_owner.get(&ctx.caller.oid).ok_or_else(GraphError::item_not_found)?;
    get_drive_inner(ctx, tenant, idx, id)
}

fn my_drive_id(ctx: &Ctx<'_>) -> Result<String, GraphError> {
    ctx.caller.require(&perms::OWN_FILES)?;
    let (_, idx) = ctx.tenant()?;
    idx.onedrive_by_owner.get(&ctx.caller.oid).cloned().ok_or_else(GraphError::item_not_found)
}

pub fn my_drive_root(ctx: &Ctx<'_>, sub: Option<&str>) -> GraphResult {
    let id = my_drive_id(ctx)?;
    root(ctx, &id, sub)
}

pub fn my_drive_item(ctx: &Ctx<'_>, item: &str, sub: Option<&str>) -> GraphResult {
    let id = my_drive_id(ctx)?;
    self::item(ctx, &id, item, sub)
}

pub fn my_drive_search(ctx: &Ctx<'_>, seg: &str) -> GraphResult {
    let id = my_drive_id(ctx)?;
    search(ctx, &id, seg)
}

pub fn get_drive(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    let (tenant, idx) = ctx.tenant()?;
    get_drive_inner(ctx, tenant, idx, id)
}

fn get_drive_inner(ctx: &Ctx<'_>, tenant: &Tenant, idx: &TenantIndex, id: &str) -> GraphResult {
    let (d, _) = ctx.store.drive(ctx.caller.tid, id).ok_or_else(GraphError::item_not_found)?;
    drive_perm(ctx, d)?;
    if !trimming::can_see_drive(&ctx.viewer(), tenant, idx, d) {
        return Err(GraphError::item_not_found());
    }
    let mut body = drive_json(tenant, idx, d);
    body["@odata.context"] = json!("https://graph.microsoft.com/v1.0/$metadata#drives/$entity");
    Ok(json(odata::apply_select(body, &ctx.query.select())))
}

pub fn root(ctx: &Ctx<'_>, drive_id: &str, sub: Option<&str>) -> GraphResult {
    let (d, di) =
        ctx.store.drive(ctx.caller.tid, drive_id).ok_or_else(GraphError::item_not_found)?;
    let root = di.root.map(|p| d.items[p].id.clone()).ok_or_else(GraphError::item_not_found)?;
    item(ctx, drive_id, &root, sub)
}

pub fn item(ctx: &Ctx<'_>, drive_id: &str, item_id: &str, sub: Option<&str>) -> GraphResult {
    let (tenant, idx) = ctx.tenant()?;
    let (d, di) =
        ctx.store.drive(ctx.caller.tid, drive_id).ok_or_else(GraphError::item_not_found)?;
    drive_perm(ctx, d)?;
    let it = di.items.get(item_id).map(|p| &d.items[*p]).ok_or_else(GraphError::item_not_found)?;
    let v = ctx.viewer();
    if !trimming::can_see_item(&v, tenant, idx, d, di, it) {
        return Err(GraphError::item_not_found());
    }
    match sub {
        None => {
            let mut body = item_json(ctx, tenant, d, di, it);
            body["@odata.context"] = json!(format!(
                "https://graph.microsoft.com/v1.0/$metadata#drives('{}')/items/$entity",
                d.id
            ));
            Ok(json(odata::apply_select(body, &ctx.query.select())))
        }
        Some("children") => {
            let kids: Vec<&DriveItem> = di
                .children
                .get(&it.id)
                .map(|v| v.iter().map(|p| &d.items[*p]).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|c| trimming::can_see_item(&v, tenant, idx, d, di, c))
                .collect();
            list_items(
                ctx,
                tenant,
                d,
                di,
                kids,
                &format!(
                    "https://graph.microsoft.com/v1.0/$metadata#drives('{}')/items('{}')/children",
                    d.id, it.id
                ),
            )
        }
        Some(_) => {
            if it.is_folder {
                return Err(GraphError::bad_request(
                    "invalidRequest",
                    "The operation is not supported on a folder.",
                ));
            }
            let url = download_url(ctx.shared, ctx.caller.tid, &d.id, &it.id, ctx.now);
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
    }
}

fn list_items(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    d: &Drive,
    di: &DriveIndex,
    items: Vec<&DriveItem>,
    context: &str,
) -> GraphResult {
    let top = ctx.query.top(200, 1000)?;
    let offset = ctx.query.offset()?;
    let select = ctx.query.select();
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(top)
        .map(|i| odata::apply_select(item_json(ctx, tenant, d, di, i), &select))
        .collect();
    let mut body = json!({"@odata.context": context, "value": page});
    if offset + top < items.len() {
        body["@odata.nextLink"] = json!(ctx.query.next_link(ctx.base(), ctx.path, offset + top));
    }
    Ok(json(body))
}

/// `root/search(q='…')`: the `q` literal with `''` for a quote.
fn parse_search_q(seg: &str) -> Option<String> {
    let inner = seg.get(seg.find('(')? + 1..seg.rfind(')')?)?;
    let (k, v) = inner.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("q") {
        return None;
    }
    let v = v.trim();
    let v = v.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(v.replace("''", "'"))
}

pub fn search(ctx: &Ctx<'_>, drive_id: &str, seg: &str) -> GraphResult {
    ctx.caller.require(&perms::DRIVE_SEARCH)?;
    let q = parse_search_q(seg).ok_or_else(|| {
        GraphError::bad_request("invalidRequest", "Invalid search request: expected search(q='…').")
    })?;
    let (tenant, idx) = ctx.tenant()?;
    let (d, di) =
        ctx.store.drive(ctx.caller.tid, drive_id).ok_or_else(GraphError::item_not_found)?;
    let v = ctx.viewer();
    let terms = crate::kql::tokenize(&q);
    let hits: Vec<&DriveItem> = d
        .items
        .iter()
        .filter(|i| i.parent_id.is_some())
        .filter(|i| {
            let text =
                crate::kql::SearchText::new(&format!("{} {}", i.name, crate::text::file_text(i)));
            !terms.is_empty() && terms.iter().all(|t| text.has_token(t, true))
        })
        .filter(|i| trimming::can_see_item(&v, tenant, idx, d, di, i))
        .collect();
    list_items(
        ctx,
        tenant,
        d,
        di,
        hits,
        "https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)",
    )
}

pub fn get_site(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::SITES)?;
    let (tenant, idx) = ctx.tenant()?;
    let site = visible_site(ctx, tenant, idx, id)?;
    let mut body = site_json(site);
    body["@odata.context"] = json!("https://graph.microsoft.com/v1.0/$metadata#sites/$entity");
    Ok(json(odata::apply_select(body, &ctx.query.select())))
}

fn visible_site<'a>(
    ctx: &Ctx<'_>,
    tenant: &'a Tenant,
    idx: &TenantIndex,
    id: &str,
) -> Result<&'a Site, GraphError> {
    let not_found = || {
        GraphError::new(StatusCode::NOT_FOUND, "itemNotFound", "Requested site could not be found")
    };
    let site = idx.sites.get(id).map(|p| &tenant.content.sites[*p]).ok_or_else(not_found)?;
    if !trimming::can_see_site(&ctx.viewer(), site) {
        return Err(not_found());
    }
    Ok(site)
}

pub fn search_sites(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::SITES)?;
    let (tenant, _) = ctx.tenant()?;
    let q = ctx.query.get("search").unwrap_or("").to_lowercase();
    let v = ctx.viewer();
    let terms = crate::kql::tokenize(&q);
    let select = ctx.query.select();
    let sites: Vec<Value> = tenant
        .content
        .sites
        .iter()
        .filter(|s| trimming::can_see_site(&v, s))
        .filter(|s| {
            let text = crate::kql::SearchText::new(&format!(
                "{} {} {} {}",
                s.name, s.display_name, s.description, s.web_url
            ));
            q == "*" || terms.iter().all(|t| text.has_token(t, true))
        })
        .map(|s| odata::apply_select(site_json(s), &select))
        .collect();
    Ok(json(
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#sites", "value": sites}),
    ))
}

pub fn site_drives(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::ALL_FILES)?;
    let (tenant, idx) = ctx.tenant()?;
    let site = visible_site(ctx, tenant, idx, id)?;
    let select = ctx.query.select();
    let drives: Vec<Value> = site
        .drive_ids
        .iter()
        .filter_map(|d| ctx.store.drive(ctx.caller.tid, d))
        .map(|(d, _)| odata::apply_select(drive_json(tenant, idx, d), &select))
        .collect();
    Ok(json(
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#drives", "value": drives}),
    ))
}

pub fn site_default_drive(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::ALL_FILES)?;
    let (tenant, idx) = ctx.tenant()?;
    let site = visible_site(ctx, tenant, idx, id)?;
    let first = site.drive_ids.first().ok_or_else(GraphError::item_not_found)?;
    get_drive_inner(ctx, tenant, idx, first)
}

/// `/shares/u!{base64url(url)}/driveItem`.
pub fn share(ctx: &Ctx<'_>, encoded: &str) -> GraphResult {
    ctx.caller.require(&perms::ALL_FILES)?;
    let bad = || GraphError::bad_request("invalidRequest", "Invalid shares key.");
    let b64 = encoded.strip_prefix("u!").ok_or_else(bad)?;
    let url = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (tenant, idx) = ctx.tenant()?;
    let v = ctx.viewer();
    for d in &tenant.content.drives {
        let Some(di) = idx.drives.get(&d.id) else { continue };
        if let Some(it) = d.items.iter().find(|i| {
            i.web_url.trim_end_matches('/').eq_ignore_ascii_case(url.trim_end_matches('/'))
        }) {
            if !trimming::can_see_item(&v, tenant, idx, d, di, it) {
                return Err(GraphError::item_not_found());
            }
            let mut body = item_json(ctx, tenant, d, di, it);
            body["@odata.context"] =
                json!("https://graph.microsoft.com/v1.0/$metadata#shares('')/driveItem/$entity");
            return Ok(json(body));
        }
    }
    Err(GraphError::item_not_found())
}

/// `GET /_download/{payload}.{sig}`: pre-authenticated bytes, `Range` → 206.
pub async fn download(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = shared.clock.now();
    let had_authorization = headers.contains_key(header::AUTHORIZATION);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut record = DownloadRecord {
        time: now,
        drive_id: String::new(),
        item_id: String::new(),
        status: 0,
        had_authorization,
        range: range.clone(),
    };
    let response = serve_download(&shared, &token, range.as_deref(), now, &mut record);
    record.status = response.status().as_u16();
    shared.downloads.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    response
}

fn plain_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

fn serve_download(
    shared: &Shared,
    token: &str,
    range: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    record: &mut DownloadRecord,
) -> Response {
    let invalid = || {
        plain_error(StatusCode::UNAUTHORIZED, "unauthenticated", "The download link is invalid.")
    };
    let Some((payload, sig)) = token.rsplit_once('.') else { return invalid() };
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&shared.download_key)
        .expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    let Ok(sig_bytes) = URL_SAFE_NO_PAD.decode(sig) else { return invalid() };
    if mac.verify_slice(&sig_bytes).is_err() {
        return invalid();
    }
    let Some(text) = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|b| String::from_utf8(b).ok())
    else {
        return invalid();
    };
    let parts: Vec<&str> = text.split('|').collect();
    let [tid, drive, item, exp] = parts.as_slice() else { return invalid() };
    record.drive_id = (*drive).to_owned();
    record.item_id = (*item).to_owned();
    let (Ok(tid), Ok(exp)) = (Uuid::parse_str(tid), exp.parse::<i64>()) else { return invalid() };
    if now.timestamp() >= exp {
        return plain_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The download link has expired.",
        );
    }
    let store = shared.read();
    let Some((_, it)) = store.drive_item(tid, drive, item) else {
        return plain_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The resource could not be found.",
        );
    };
    let bytes = it.bytes.clone().unwrap_or_default();
    let mime = it.mime_type.clone().unwrap_or_else(|| "application/octet-stream".into());
    drop(store);
    let total = bytes.len();
    let mut r = match range.and_then(|r| parse_range(r, total)) {
        Some((start, end)) => {
            let mut r = (StatusCode::PARTIAL_CONTENT, bytes[start..=end].to_vec()).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        None if range.is_some() && total > 0 => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        None => (StatusCode::OK, bytes).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    r
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` within `total`.
fn parse_range(r: &str, total: usize) -> Option<(usize, usize)> {
    let spec = r.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if total == 0 {
        return None;
    }
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: usize = n.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}
