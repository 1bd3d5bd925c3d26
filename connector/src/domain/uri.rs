//! The `m365://` URI scheme (`graph.md` §12.1) and the web links users paste.
//!
//! # Design
//! Every search hit carries an [`M365Uri`]; `read_resource` and MCP `resources/read` accept
//! it back. The grammar names **no tenant and no user**: mail, events and chats are always
//! read through `/me`, drives and sites through their global ids, so a URI cannot point into
//! another tenant or mailbox (conformance I01, I02).
//!
//! Parsing is strict and happens before any network work (`security.md` §4.5, F06):
//! * at most [`MAX_URI_LEN`] bytes, printable ASCII only (no controls, no bidi overrides,
//!   no full-width look-alikes such as `ｍ365://`), exactly the lowercase scheme `m365://`;
//! * no query, fragment, empty segment or trailing data; fixed literals between ids;
//! * each id segment is RFC 3986 unreserved characters or `%XX`, decoded **exactly once**,
//!   and the decoded id must match its kind's pattern. No pattern admits `%`, so a
//!   double-encoded `%252e` cannot survive; `.`/`..` never match either.
//!
//! [`Display`](std::fmt::Display) writes the canonical form, percent-encoding every byte of
//! an id outside the unreserved set, so `parse(uri.to_string()) == uri` (property-tested).
//! [`M365Uri::graph_path`] maps a URI onto a fixed Graph template with per-segment encoding,
//! so no id can change the path's structure.
//!
//! [`parse_link`] turns pasted web links into a [`LinkTarget`] **without fetching them**:
//! SharePoint/OneDrive links become a `/shares/u!{base64url}` lookup on the configured Graph
//! host, Teams chat-message links and Outlook web links become [`M365Uri`]s.

use std::fmt;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::Url;

/// URIs (and pasted links) longer than this are refused before any parsing work (E11).
pub const MAX_URI_LEN: usize = 2048;

/// The scheme prefix.
pub const SCHEME: &str = "m365://";

/// Everything but RFC 3986 unreserved characters is encoded in an id segment.
const ID_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A parsed `m365://` URI. Fields hold the **decoded** ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum M365Uri {
    /// `m365://mail/{msgId}[/attachment/{attId}]`, read through `/me/messages`.
    Mail { message: String, attachment: Option<String> },
    /// `m365://event/{eventId}`, read through `/me/events`.
    Event { id: String },
    /// `m365://drive/{driveId}/item/{itemId}`.
    DriveItem { drive: String, item: String },
    /// `m365://site/{siteId}/list/{listId}/item/{listItemId}`.
    ListItem { site: String, list: String, item: String },
    /// `m365://chat/{chatId}[/message/{messageId}]`.
    Chat { chat: String, message: Option<String> },
}

/// Which kind of resource a URI names; also the resource-template names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Mail,
    MailAttachment,
    Event,
    DriveItem,
    ListItem,
    Chat,
    ChatMessage,
}

/// Why a URI or link was refused. Messages never echo the input (it may hold anything).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("the URI is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    #[error("the URI contains control, non-ASCII or whitespace characters")]
    BadCharacters,
    #[error(
        "only m365:// URIs (or SharePoint, OneDrive, Teams and Outlook web links) are accepted"
    )]
    Scheme,
    #[error("m365:// URIs take no query or fragment")]
    QueryOrFragment,
    #[error("unknown m365:// resource kind; expected mail, event, drive, site or chat")]
    UnknownKind,
    #[error("malformed m365:// URI: expected {expected}")]
    Shape { expected: &'static str },
    #[error("the {what} in the URI is not a valid id")]
    BadId { what: &'static str },
    #[error("this web link is not one the connector can resolve: {reason}")]
    UnsupportedLink { reason: &'static str },
}

impl ResourceKind {
    /// The URI template of this kind (RFC 6570 level 1), for `resources/templates/list`.
    pub fn template(self) -> &'static str {
        match self {
            Self::Mail => "m365://mail/{messageId}",
            Self::MailAttachment => "m365://mail/{messageId}/attachment/{attachmentId}",
            Self::Event => "m365://event/{eventId}",
            Self::DriveItem => "m365://drive/{driveId}/item/{itemId}",
            Self::ListItem => "m365://site/{siteId}/list/{listId}/item/{listItemId}",
            Self::Chat => "m365://chat/{chatId}",
            Self::ChatMessage => "m365://chat/{chatId}/message/{messageId}",
        }
    }

    /// Every kind, in a stable order.
    pub const ALL: [ResourceKind; 7] = [
        Self::Mail,
        Self::MailAttachment,
        Self::Event,
        Self::DriveItem,
        Self::ListItem,
        Self::Chat,
        Self::ChatMessage,
    ];

    /// The snake_case name (`"drive_item"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::MailAttachment => "mail_attachment",
            Self::Event => "event",
            Self::DriveItem => "drive_item",
            Self::ListItem => "list_item",
            Self::Chat => "chat",
            Self::ChatMessage => "chat_message",
        }
    }
}

impl M365Uri {
    /// Parses a URI under the strict rules of the module docs.
    pub fn parse(input: &str) -> Result<Self, UriError> {
        if input.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UriError::BadCharacters);
        }
        let rest = input.strip_prefix(SCHEME).ok_or(UriError::Scheme)?;
        if rest.contains(['?', '#']) {
            return Err(UriError::QueryOrFragment);
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let kind = segs.first().copied().unwrap_or_default();
        let id = |i: usize,
                  what: &'static str,
                  check: fn(&str) -> bool|
         -> Result<String, UriError> { decode_id(segs[i], what, check) };
        match (kind, segs.len()) {
            ("mail", 2) => {
                Ok(Self::Mail { message: id(1, "message id", exchange_id)?, attachment: None })
            }
            ("mail", 4) if segs[2] == "attachment" => Ok(Self::Mail {
                message: id(1, "message id", exchange_id)?,
                attachment: Some(id(3, "attachment id", exchange_id)?),
            }),
            ("mail", _) => Err(UriError::Shape {
                expected: "m365://mail/{messageId}[/attachment/{attachmentId}]",
            }),
            ("event", 2) => Ok(Self::Event { id: id(1, "event id", exchange_id)? }),
            ("event", _) => Err(UriError::Shape { expected: "m365://event/{eventId}" }),
            ("drive", 4) if segs[2] == "item" => Ok(Self::DriveItem {
                drive: id(1, "drive id", drive_id)?,
                item: id(3, "item id", item_id)?,
            }),
            ("drive", _) => {
                Err(UriError::Shape { expected: "m365://drive/{driveId}/item/{itemId}" })
            }
            ("site", 6) if segs[2] == "list" && segs[4] == "item" => Ok(Self::ListItem {
                site: id(1, "site id", site_id)?,
                list: id(3, "list id", guid)?,
                item: id(5, "list item id", |s| digits(s, 10))?,
            }),
            ("site", _) => Err(UriError::Shape {
                expected: "m365://site/{siteId}/list/{listId}/item/{listItemId}",
            }),
            ("chat", 2) => Ok(Self::Chat { chat: id(1, "chat id", chat_id)?, message: None }),
            ("chat", 4) if segs[2] == "message" => Ok(Self::Chat {
                chat: id(1, "chat id", chat_id)?,
                message: Some(id(3, "chat message id", |s| digits(s, 20))?),
            }),
            ("chat", _) => {
                Err(UriError::Shape { expected: "m365://chat/{chatId}[/message/{messageId}]" })
            }
            _ => Err(UriError::UnknownKind),
        }
    }

    /// `m365://mail/{id}`.
    pub fn mail(message: impl Into<String>) -> Self {
        Self::Mail { message: message.into(), attachment: None }
    }

    /// `m365://drive/{drive}/item/{item}`.
    pub fn drive_item(drive: impl Into<String>, item: impl Into<String>) -> Self {
        Self::DriveItem { drive: drive.into(), item: item.into() }
    }

    /// `m365://chat/{chat}/message/{message}`.
    pub fn chat_message(chat: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Chat { chat: chat.into(), message: Some(message.into()) }
    }

    /// Whether every id matches its kind's pattern, i.e. whether [`Self::parse`] of
    /// [`Self::to_string`] gives the same value back. Search tools use it before handing out a
    /// URI built from Graph ids, and give no URI when it fails.
    pub fn is_valid(&self) -> bool {
        Self::parse(&self.to_string()).is_ok_and(|back| back == *self)
    }

    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Mail { attachment: None, .. } => ResourceKind::Mail,
            Self::Mail { attachment: Some(_), .. } => ResourceKind::MailAttachment,
            Self::Event { .. } => ResourceKind::Event,
            Self::DriveItem { .. } => ResourceKind::DriveItem,
            Self::ListItem { .. } => ResourceKind::ListItem,
            Self::Chat { message: None, .. } => ResourceKind::Chat,
            Self::Chat { message: Some(_), .. } => ResourceKind::ChatMessage,
        }
    }
}

impl fmt::Display for M365Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = |s: &str| utf8_percent_encode(s, ID_ENCODE).to_string();
        match self {
            Self::Mail { message, attachment: None } => write!(f, "m365://mail/{}", e(message)),
            Self::Mail { message, attachment: Some(a) } => {
                write!(f, "m365://mail/{}/attachment/{}", e(message), e(a))
            }
            Self::Event { id } => write!(f, "m365://event/{}", e(id)),
            Self::DriveItem { drive, item } => {
                write!(f, "m365://drive/{}/item/{}", e(drive), e(item))
            }
            Self::ListItem { site, list, item } => {
                write!(f, "m365://site/{}/list/{}/item/{}", e(site), e(list), e(item))
            }
            Self::Chat { chat, message: None } => write!(f, "m365://chat/{}", e(chat)),
            Self::Chat { chat, message: Some(m) } => {
                write!(f, "m365://chat/{}/message/{}", e(chat), e(m))
            }
        }
    }
}

impl std::str::FromStr for M365Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Decodes one segment exactly once and checks the decoded id against its pattern.
fn decode_id(seg: &str, what: &'static str, check: fn(&str) -> bool) -> Result<String, UriError> {
    let bad = || UriError::BadId { what };
    let bytes = seg.as_bytes();
    let mut i = 0;
    if bytes.is_empty() {
        return Err(bad());
    }
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(bad());
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => i += 1,
            _ => return Err(bad()),
        }
    }
    let decoded = percent_decode_str(seg).decode_utf8().map_err(|_| bad())?;
    if check(&decoded) { Ok(decoded.into_owned()) } else { Err(bad()) }
}

fn within(s: &str, min: usize, max: usize, ok: impl Fn(u8) -> bool) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(ok)
}

/// `^[A-Za-z0-9+/=_-]{1,512}$`: Exchange ids in REST or EWS form.
fn exchange_id(s: &str) -> bool {
    within(s, 1, 512, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
    })
}

/// `^b![A-Za-z0-9_-]{1,200}$`.
fn drive_id(s: &str) -> bool {
    s.strip_prefix("b!").is_some_and(|r| {
        within(r, 1, 200, |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    })
}

/// `^[A-Za-z0-9!_-]{1,200}$`.
fn item_id(s: &str) -> bool {
    within(s, 1, 200, |b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'_' | b'-'))
}

/// `host,siteGuid,webGuid`.
fn site_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split(',').collect();
    parts.len() == 3
        && within(parts[0], 1, 253, |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && guid(parts[1])
        && guid(parts[2])
}

fn guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn digits(s: &str, max: usize) -> bool {
    within(s, 1, max, |b| b.is_ascii_digit())
}

/// `^19:[A-Za-z0-9_.@-]{1,200}$`.
fn chat_id(s: &str) -> bool {
    s.strip_prefix("19:").is_some_and(|r| {
        within(r, 1, 200, |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
    })
}

// ---------------------------------------------------------------------------------------------
// Pasted web links

/// What a pasted link resolves to, without fetching it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// The link names a resource directly.
    Uri(M365Uri),
    /// A SharePoint or OneDrive link: resolve with `GET /shares/{share_id}/driveItem`.
    Share { share_id: String },
}

/// Hosts whose links are SharePoint or OneDrive documents.
fn is_sharepoint_host(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h.ends_with(".sharepoint.com") || h == "1drv.ms" || h == "onedrive.live.com"
}

fn is_outlook_host(host: &str) -> bool {
    matches!(
        host.to_ascii_lowercase().as_str(),
        "outlook.office.com" | "outlook.office365.com" | "outlook.live.com"
    )
}

/// Accepts an `m365://` URI or a pasted SharePoint/OneDrive, Teams or Outlook web link.
/// Anything else (other hosts, raw Graph URLs, `http://`, credentials in the URL, odd ports)
/// is refused. Nothing is fetched: a link is only parsed into ids.
pub fn parse_link(input: &str) -> Result<LinkTarget, UriError> {
    let input = input.trim();
    if input.len() > MAX_URI_LEN {
        return Err(UriError::TooLong);
    }
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UriError::BadCharacters);
    }
    if input.starts_with(SCHEME) {
        return M365Uri::parse(input).map(LinkTarget::Uri);
    }
    let unsupported = |reason| UriError::UnsupportedLink { reason };
    let url = Url::parse(input).map_err(|_| UriError::Scheme)?;
    if url.scheme() != "https" {
        return Err(UriError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(unsupported("links with credentials or ports are refused"));
    }
    let host = url.host_str().ok_or(UriError::Scheme)?;
    if is_sharepoint_host(host) {
        // Graph's shares key: "u!" + base64url(url) without padding (driveitem shares docs).
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input.as_bytes());
        return Ok(LinkTarget::Share { share_id: format!("u!{encoded}") });
    }
    if host.eq_ignore_ascii_case("teams.microsoft.com") {
        return teams_link(&url).map(LinkTarget::Uri);
    }
    if is_outlook_host(host) {
        return outlook_link(&url).map(LinkTarget::Uri);
    }
    Err(UriError::Scheme)
}

/// `https://teams.microsoft.com/l/message/{chatId}/{messageId}?…`. Channel messages
/// (`groupId` in the query, or a `@thread.tacv2`/`@thread.skype` conversation) are refused:
/// reading them needs `ChannelMessage.Read.All`, which the connector does not request.
fn teams_link(url: &Url) -> Result<M365Uri, UriError> {
    let unsupported = |reason| UriError::UnsupportedLink { reason };
    let segs: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let ["l", "message", chat, message, ..] = segs.as_slice() else {
        return Err(unsupported("only Teams message links (…/l/message/…) are supported"));
    };
    let chat =
        percent_decode_str(chat).decode_utf8().map_err(|_| UriError::BadId { what: "chat id" })?;
    let channel = url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("groupId"))
        || chat.ends_with("@thread.tacv2")
        || chat.ends_with("@thread.skype");
    if channel {
        return Err(unsupported("channel messages cannot be read; only chat messages"));
    }
    let uri = M365Uri::Chat { chat: chat.into_owned(), message: Some((*message).to_owned()) };
    if uri.is_valid() { Ok(uri) } else { Err(UriError::BadId { what: "chat or message id" }) }
}

/// Outlook on the web: `…/mail/{folder}/id/{id}`, `…/mail/deeplink/read/{id}`,
/// `…/calendar/item/{id}`, `…/calendar/deeplink/read/{id}`, `…/owa/?ItemID={id}…`.
fn outlook_link(url: &Url) -> Result<M365Uri, UriError> {
    let unsupported = |reason| UriError::UnsupportedLink { reason };
    let segs: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let query_item = url
        .query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("ItemID"))
        .map(|(_, v)| v.into_owned());
    let (is_event, raw) = match segs.as_slice() {
        ["mail", .., "id", id] => (false, percent_decode(id)?),
        ["mail", "deeplink", "read", id] => (false, percent_decode(id)?),
        ["calendar", "item", id] => (true, percent_decode(id)?),
        ["calendar", "deeplink", "read", id] => (true, percent_decode(id)?),
        ["owa", ..] => {
            let id = query_item.ok_or_else(|| unsupported("the Outlook link carries no ItemID"))?;
            let path = url
                .query_pairs()
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .map(|(_, v)| v.to_ascii_lowercase());
            (path.is_some_and(|p| p.starts_with("/calendar")), id)
        }
        _ => return Err(unsupported("this Outlook link does not name a message or event")),
    };
    let uri = if is_event { M365Uri::Event { id: raw } } else { M365Uri::mail(raw) };
    if uri.is_valid() { Ok(uri) } else { Err(UriError::BadId { what: "Outlook item id" }) }
}

fn percent_decode(s: &str) -> Result<String, UriError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| UriError::BadId { what: "Outlook item id" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSG: &str = "AAMkAGI2+THgHd/AAA=";
    const CHAT: &str = "19:2b3c_8f9a@unq.gbl.spaces";
    const SITE: &str = "contoso.sharepoint.com,6598ee0b-1d0e-4b4c-8a0b-1a2b3c4d5e6f,60024ce8-1d0e-4b4c-8a0b-1a2b3c4d5e6f";

    const LIST: &str = "6598ee0b-1d0e-4b4c-8a0b-1a2b3c4d5e6f";

    /// One URI of each kind, in the order of [`ResourceKind::ALL`].
    fn one_of_each_kind() -> [M365Uri; 7] {
        [
            M365Uri::mail(MSG),
            M365Uri::Mail { message: MSG.into(), attachment: Some("AAMkATT=".into()) },
            M365Uri::Event { id: "AAMkEv/+=".into() },
            M365Uri::drive_item("b!abc_DEF-1", "01ABCDEF"),
            list_item(SITE, LIST),
            M365Uri::Chat { chat: CHAT.into(), message: None },
            M365Uri::chat_message(CHAT, "1657782060227"),
        ]
    }

    fn list_item(site: &str, list: &str) -> M365Uri {
        M365Uri::ListItem { site: site.into(), list: list.into(), item: "42".into() }
    }

    #[test]
    fn every_kind_round_trips_with_encoded_ids() {
        for uri in one_of_each_kind() {
            let text = uri.to_string();
            assert_eq!(M365Uri::parse(&text), Ok(uri.clone()), "{text}");
            assert_eq!(text.parse::<M365Uri>(), Ok(uri.clone()), "{text}");
            assert!(uri.is_valid(), "{text}");
        }
        assert_eq!(M365Uri::mail(MSG).to_string(), "m365://mail/AAMkAGI2%2BTHgHd%2FAAA%3D");
        assert_eq!(
            M365Uri::chat_message(CHAT, "1").to_string(),
            "m365://chat/19%3A2b3c_8f9a%40unq.gbl.spaces/message/1"
        );
    }

    #[test]
    fn a_uri_whose_ids_break_their_pattern_is_not_valid() {
        assert!(!M365Uri::mail("..").is_valid());
        assert!(!M365Uri::drive_item("x", "01A").is_valid());
        assert!(!M365Uri::chat_message(CHAT, "one").is_valid());
    }

    /// The templates and names listed to clients describe the URIs the parser accepts.
    #[test]
    fn each_kind_template_and_name_describe_its_uris() {
        let kinds = one_of_each_kind().map(|uri| uri.kind());
        assert_eq!(kinds, ResourceKind::ALL);
        for uri in one_of_each_kind() {
            let kind = uri.kind();
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name(), "{kind:?}");
            let (template, text) = (kind.template(), uri.to_string());
            let (want, got): (Vec<_>, Vec<_>) =
                (template.split('/').collect(), text.split('/').collect());
            assert_eq!(want.len(), got.len(), "{template} vs {text}");
            for (w, g) in want.iter().zip(&got) {
                assert!(w.starts_with('{') || w == g, "{template} vs {text}");
            }
        }
    }

    #[test]
    fn uris_and_links_up_to_the_length_cap_parse_and_longer_ones_are_too_long() {
        // 512 `+` encode to 1,536 bytes; the attachment id fills the rest of the cap.
        let filler = MAX_URI_LEN - "m365://mail//attachment/".len() - 3 * 512;
        let uri = M365Uri::Mail { message: "+".repeat(512), attachment: Some("A".repeat(filler)) };
        let text = uri.to_string();
        assert_eq!(text.len(), MAX_URI_LEN);
        assert_eq!(M365Uri::parse(&text), Ok(uri));
        assert_eq!(M365Uri::parse(&format!("{text}A")), Err(UriError::TooLong));

        let host = "https://contoso.sharepoint.com/";
        let link = format!("{host}{}", "a".repeat(MAX_URI_LEN - host.len()));
        assert!(matches!(parse_link(&link), Ok(LinkTarget::Share { .. })));
        assert_eq!(parse_link(&format!("{link}a")), Err(UriError::TooLong));
    }

    #[test]
    fn a_wrong_shape_is_named_and_an_unknown_kind_is_refused_as_such() {
        let list = list_item(SITE, LIST).to_string();
        let shapes = [
            "m365://mail/AAA/attachment".to_owned(),
            "m365://mail/AAA/attachments/BBB".into(),
            "m365://mail/AAA/attachment/BBB/CCC".into(),
            "m365://event/AAA/attachment/BBB".into(),
            "m365://drive/b%21x".into(),
            "m365://drive/b%21x/items/01A".into(),
            list.replace("/list/", "/lists/"),
            list.replace("/item/", "/items/"),
            "m365://chat/19%3Aa/messages/1".into(),
        ];
        for input in &shapes {
            assert!(matches!(M365Uri::parse(input), Err(UriError::Shape { .. })), "{input}");
        }
        for input in ["m365://", "m365://Mail/AAA", "m365://me/AAA"] {
            assert_eq!(M365Uri::parse(input), Err(UriError::UnknownKind), "{input}");
        }
    }

    #[test]
    fn hostile_inputs_are_refused() {
        let bad = [
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "data:text/plain,hi",
            "javascript:alert(1)",
            "https://graph.microsoft.com/v1.0/users/x/messages",
            "M365://mail/AAA",
            "\u{ff4d}365://mail/AAA",
            "m365://mail/../../users/x/messages/y",
            "m365://mail/%2e%2e%2fusers",
            "m365://mail/%252e%252e%252f",
            "m365://mail/..%5cx",
            "m365://mail/a;x=y",
            "m365://mail/AAA?$expand=attachments",
            "m365://mail/AAA#frag",
            "m365://mail/AAA/",
            "m365://mail//AAA",
            "m365://mail/AA\u{0}A",
            "m365://mail/AA\r\nA",
            "m365://mail/AA\u{202e}A",
            "m365://t/2dafe747-82eb-4139-95a6-9c4ded21e24c/mail/AAA",
            "m365://drive/b!x/item/y/content",
            "m365://drive/notb/item/y",
            "m365://chat/19%3Aabc%40thread.v2/message/abc",
            "m365://chat/20%3Aabc/message/1",
            "m365://site/x/list/y/item/1",
            "m365://mail/%zz",
            "m365://mail/%4",
            "m365://",
            "",
            // A character an id pattern admits must still come percent-encoded.
            "m365://mail/AA+A",
            "m365://mail/AAAA%2B+A",
            "m365://chat/19:abc",
            "m365://drive/b%21x/item/%2e%2e",
        ];
        let guid = LIST;
        let sites = [
            format!("contoso.sharepoint.com,{guid}"),
            format!("contoso.sharepoint.com,{guid},{guid},x"),
            format!("contoso_sharepoint.com,{guid},{guid}"),
            format!("contoso.sharepoint.com,x,{guid}"),
        ];
        let lists = sites
            .iter()
            .map(|site| list_item(site, guid))
            .chain([list_item(SITE, &guid.replace('-', ""))])
            .map(|uri| uri.to_string());
        for input in bad.map(String::from).into_iter().chain(lists) {
            let input = input.as_str();
            assert!(M365Uri::parse(input).is_err(), "{input:?} should be refused");
            assert!(parse_link(input).is_err(), "{input:?} should be refused as a link");
        }
        let long = format!("m365://mail/{}", "A".repeat(MAX_URI_LEN));
        assert_eq!(M365Uri::parse(&long), Err(UriError::TooLong));
    }

    #[test]
    fn graph_paths_use_fixed_templates() {
        assert_eq!(
            M365Uri::mail(MSG).graph_path().as_string(),
            "/me/messages/AAMkAGI2%2BTHgHd%2FAAA%3D"
        );
        assert_eq!(
            M365Uri::chat_message(CHAT, "7").graph_path().as_string(),
            "/chats/19:2b3c_8f9a@unq.gbl.spaces/messages/7"
        );
        assert_eq!(
            M365Uri::drive_item("b!x", "01A").graph_path().as_string(),
            "/drives/b!x/items/01A"
        );
    }

    #[test]
    fn sharepoint_links_become_share_lookups() {
        let link =
            "https://contoso.sharepoint.com/sites/Finance/Shared%20Documents/Q3%20Budget.xlsx";
        let LinkTarget::Share { share_id } = parse_link(link).expect("share") else {
            panic!("share")
        };
        let encoded = share_id.strip_prefix("u!").expect("u! prefix");
        let decoded =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).expect("b64");
        assert_eq!(decoded, link.as_bytes());
        assert!(!share_id.contains(['=', '+', '/']));
        for link in [
            "https://contoso-my.sharepoint.com/:w:/g/personal/x/EabC",
            "https://1drv.ms/w/s!AbC",
            "https://onedrive.live.com/?id=ABC",
        ] {
            assert!(matches!(parse_link(link), Ok(LinkTarget::Share { .. })), "{link}");
        }
        for bad in [
            "http://contoso.sharepoint.com/x",
            "https://user@contoso.sharepoint.com/x",
            "https://contoso.sharepoint.com:8443/x",
            "https://contoso.sharepoint.com.evil.com/x",
            "https://evil.com/contoso.sharepoint.com",
            "//evil.com/x",
            "\\\\evil\\x",
        ] {
            assert!(parse_link(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn teams_and_outlook_links_become_uris() {
        let teams = "https://teams.microsoft.com/l/message/19%3A2b3c_8f9a%40unq.gbl.spaces/1657782060227?context=%7B%7D";
        assert_eq!(
            parse_link(teams),
            Ok(LinkTarget::Uri(M365Uri::chat_message(CHAT, "1657782060227")))
        );
        let channel =
            "https://teams.microsoft.com/l/message/19%3Aabc%40thread.tacv2/1657782060227?groupId=x";
        assert!(matches!(parse_link(channel), Err(UriError::UnsupportedLink { .. })));
        let owa = "https://outlook.office365.com/owa/?ItemID=AAMkAGI2%2BTHgHd%2FAAA%3D&exvsurl=1&viewmodel=ReadMessageItem";
        assert_eq!(parse_link(owa), Ok(LinkTarget::Uri(M365Uri::mail(MSG))));
        let mail = "https://outlook.office.com/mail/inbox/id/AAMkAGI2%2BTHgHd%2FAAA%3D";
        assert_eq!(parse_link(mail), Ok(LinkTarget::Uri(M365Uri::mail(MSG))));
        let event = "https://outlook.office.com/calendar/item/AAMkEv%2F%2B%3D";
        assert_eq!(
            parse_link(event),
            Ok(LinkTarget::Uri(M365Uri::Event { id: "AAMkEv/+=".into() }))
        );
        assert!(parse_link("https://outlook.office.com/mail/inbox/id/..%2F..%2Fx").is_err());
        for (link, uri) in [
            ("https://outlook.office.com/mail/deeplink/read/AAMk", M365Uri::mail("AAMk")),
            ("https://outlook.live.com/calendar/deeplink/read/AAEv", event_uri("AAEv")),
            (
                "https://outlook.office365.com/owa/?ItemID=AAEv&path=/calendar/item",
                event_uri("AAEv"),
            ),
        ] {
            assert_eq!(parse_link(link), Ok(LinkTarget::Uri(uri)), "{link}");
        }
        assert_eq!(parse_link("https://evil.com/mail/inbox/id/AAMk"), Err(UriError::Scheme));
    }

    fn event_uri(id: &str) -> M365Uri {
        M365Uri::Event { id: id.into() }
    }

    /// Each sign of a channel message refuses the link on its own.
    #[test]
    fn teams_channel_links_are_refused_by_any_one_sign() {
        for link in [
            "https://teams.microsoft.com/l/message/19%3Aabc%40unq.gbl.spaces/1?groupId=x",
            "https://teams.microsoft.com/l/message/19%3Aabc%40thread.tacv2/1",
            "https://teams.microsoft.com/l/message/19%3Aabc%40thread.skype/1",
        ] {
            assert!(matches!(parse_link(link), Err(UriError::UnsupportedLink { .. })), "{link}");
        }
    }

    fn any_uri() -> impl Strategy<Value = M365Uri> {
        let ex = "[A-Za-z0-9+/=_-]{1,60}";
        prop_oneof![
            (ex, proptest::option::of(ex))
                .prop_map(|(m, a)| M365Uri::Mail { message: m, attachment: a }),
            ex.prop_map(|id| M365Uri::Event { id }),
            ("[A-Za-z0-9_-]{1,60}", "[A-Za-z0-9!_-]{1,60}")
                .prop_map(|(d, i)| M365Uri::drive_item(format!("b!{d}"), i)),
            ("[a-z0-9.-]{1,30}", any::<u128>(), any::<u128>(), "[0-9]{1,10}").prop_map(
                |(h, a, b, i)| {
                    let g = |n| uuid::Uuid::from_u128(n).hyphenated().to_string();
                    M365Uri::ListItem {
                        site: format!("{h},{},{}", g(a), g(b)),
                        list: g(a),
                        item: i,
                    }
                }
            ),
            ("[A-Za-z0-9_.@-]{1,60}", proptest::option::of("[0-9]{1,20}"))
                .prop_map(|(c, m)| M365Uri::Chat { chat: format!("19:{c}"), message: m }),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(uri in any_uri()) {
            let text = uri.to_string();
            prop_assert!(text.len() <= MAX_URI_LEN);
            prop_assert_eq!(M365Uri::parse(&text), Ok(uri));
        }

        /// Whatever the input, a parsed URI maps to a Graph path that stays inside its
        /// template: fixed first segment, no dot-segments, no query or fragment characters.
        #[test]
        fn no_input_escapes_its_graph_template(tail in "[A-Za-z0-9%./?#:@!,=+_~-]{0,80}",
                                               kind in prop_oneof![Just("mail"), Just("event"), Just("drive"), Just("site"), Just("chat")]) {
            let input = format!("m365://{kind}/{tail}");
            if let Ok(uri) = M365Uri::parse(&input) {
                let path = uri.graph_path();
                let segs = path.encoded_segments();
                let first = ["me", "drives", "sites", "chats"];
                prop_assert!(first.contains(&segs[0].as_str()));
                for s in segs {
                    prop_assert!(!s.is_empty() && s != "." && s != "..");
                    prop_assert!(!s.contains(['/', '?', '#']));
                    prop_assert!(!s.to_ascii_lowercase().contains("%2e%2e"));
                }
                prop_assert_eq!(M365Uri::parse(&uri.to_string()), Ok(uri));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(input in "\\PC{0,200}") {
            let _ = M365Uri::parse(&input);
            let _ = parse_link(&input);
        }
    }
}
