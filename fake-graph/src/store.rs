//! The served world and its lookup indexes.
//!
//! Everything is keyed by tenant first, so a lookup made for a caller can only ever find objects
//! of the caller's tenant: another tenant's ids simply are not in the map (tenant isolation by
//! construction). The indexes are rebuilt after every content edit; edits are test-only and rare,
//! reads are hot.

use std::collections::HashMap;

use fixtures::{Drive, DriveItem, Tenant, User, World};
use uuid::Uuid;

use crate::kql::{PostingIndex, SearchText};

/// The world plus indexes, behind one `RwLock` in the server state.
pub struct Store {
    pub world: World,
    pub tenants: HashMap<Uuid, TenantIndex>,
}

/// Positions inside one tenant.
#[derive(Default)]
pub struct TenantIndex {
    pub pos: usize,
    pub users_by_oid: HashMap<Uuid, usize>,
    /// Lower-case UPN and mail → user position.
    pub users_by_name: HashMap<String, usize>,
    /// User oid → ids of the groups the user belongs to.
    pub user_groups: HashMap<Uuid, Vec<Uuid>>,
    pub mailboxes: HashMap<Uuid, MailboxIndex>,
    pub calendars: HashMap<Uuid, usize>,
    pub drives: HashMap<String, DriveIndex>,
    pub onedrive_by_owner: HashMap<Uuid, String>,
    pub sites: HashMap<String, usize>,
    pub chats: HashMap<String, usize>,
    pub teams: HashMap<String, usize>,
    /// Search data of each calendar, same positions as `content.calendars`.
    pub calendar_search: Vec<TextIndex>,
    /// Search data of each chat's messages, same positions as `content.chats`.
    pub chat_search: Vec<ChatSearch>,
    /// Search data of each channel's messages: `[team position][channel position]`.
    pub channel_search: Vec<Vec<ChatSearch>>,
}

/// Per-document search text plus its inverted index (same positions as the documents).
#[derive(Default)]
pub struct TextIndex {
    pub text: Vec<SearchText>,
    pub postings: PostingIndex,
}

impl TextIndex {
    fn new(text: Vec<SearchText>) -> Self {
        let postings = PostingIndex::build(&text);
        Self { text, postings }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.text.iter().map(SearchText::heap_bytes).sum::<usize>() + self.postings.heap_bytes()
    }
}

/// Chat or channel messages prepared for search: the plain-text bodies (the hit summaries)
/// and their index.
#[derive(Default)]
pub struct ChatSearch {
    pub plain: Vec<String>,
    pub index: TextIndex,
}

fn chat_search(messages: &[fixtures::ChatMessage]) -> ChatSearch {
    let plain: Vec<String> = messages.iter().map(|m| crate::text::html_to_text(&m.body)).collect();
    let text = plain.iter().map(|p| SearchText::new(p)).collect();
    ChatSearch { plain, index: TextIndex::new(text) }
}

pub struct MailboxIndex {
    pub pos: usize,
    /// Message positions, newest `receivedDateTime` first (Graph's default order).
    pub by_received_desc: Vec<u32>,
    pub by_id: HashMap<String, u32>,
    pub by_immutable_id: HashMap<String, u32>,
    /// Position → rank in newest-`sent`-first order (ties by position): search hit order.
    pub sent_rank: Vec<u32>,
    /// Per-message searchable text, same positions as the messages.
    pub text: Vec<SearchText>,
    /// Inverted index: token → message positions (ascending), used to narrow KQL scans.
    pub postings: PostingIndex,
}

pub struct DriveIndex {
    pub pos: usize,
    pub items: HashMap<String, usize>,
    pub children: HashMap<String, Vec<usize>>,
    pub root: Option<usize>,
    /// Per-item search data, same positions as the drive's items: built once here so a
    /// `/search/query` scan neither decodes file bytes nor lower-cases text per request.
    pub search: Vec<ItemSearch>,
    /// Inverted index over `search[..].text`.
    pub postings: PostingIndex,
}

/// What `/search/query` matches a drive item against.
pub struct ItemSearch {
    /// Tokenised `"{name} {file text} {author}"`.
    pub text: SearchText,
    /// Display name of the creating user (empty when unknown).
    pub author: String,
    /// Tokenised name (`filename:`), and the author's (`author:`): built here so that
    /// restrictions allocate nothing per item.
    pub name: SearchText,
    pub author_text: SearchText,
    /// The extension after the last dot (empty without one).
    pub ext: String,
}

impl Store {
    pub fn new(world: World) -> Self {
        let mut store = Self { world, tenants: HashMap::new() };
        store.reindex();
        store
    }

    /// Rebuilds every index from `world` (after a content edit).
    pub fn reindex(&mut self) {
        self.tenants = self
            .world
            .tenants
            .iter()
            .enumerate()
            .map(|(pos, t)| (t.id, index_tenant(pos, t)))
            .collect();
    }

    pub fn tenant(&self, tid: Uuid) -> Option<(&Tenant, &TenantIndex)> {
        let idx = self.tenants.get(&tid)?;
        Some((&self.world.tenants[idx.pos], idx))
    }

    /// A user of the tenant by object id, UPN or mail (case-insensitive).
    pub fn user<'a>(&'a self, tid: Uuid, key: &str) -> Option<&'a User> {
        let (tenant, idx) = self.tenant(tid)?;
        let pos = match Uuid::parse_str(key) {
            Ok(oid) => idx.users_by_oid.get(&oid),
            Err(_) => idx.users_by_name.get(&key.to_ascii_lowercase()),
        }?;
        Some(&tenant.users[*pos])
    }

    pub fn user_by_oid(&self, tid: Uuid, oid: Uuid) -> Option<&User> {
        let (tenant, idx) = self.tenant(tid)?;
        idx.users_by_oid.get(&oid).map(|p| &tenant.users[*p])
    }

    pub fn groups_of(&self, tid: Uuid, oid: Uuid) -> &[Uuid] {
        self.tenants
            .get(&tid)
            .and_then(|t| t.user_groups.get(&oid))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn drive(&self, tid: Uuid, drive_id: &str) -> Option<(&Drive, &DriveIndex)> {
        let (tenant, idx) = self.tenant(tid)?;
        let d = idx.drives.get(drive_id)?;
        Some((&tenant.content.drives[d.pos], d))
    }

    pub fn drive_item<'a>(
        &'a self,
        tid: Uuid,
        drive_id: &str,
        item_id: &str,
    ) -> Option<(&'a Drive, &'a DriveItem)> {
        let (drive, d) = self.drive(tid, drive_id)?;
        let pos = d.items.get(item_id)?;
        Some((drive, &drive.items[*pos]))
    }
}

/// Heap bytes of the search data (per-document text and postings) the store builds for `world`:
/// reported by the throughput bench.
pub fn search_index_bytes(world: &World) -> usize {
    world.tenants.iter().enumerate().map(|(pos, t)| index_tenant(pos, t).search_bytes()).sum()
}

impl TenantIndex {
    fn search_bytes(&self) -> usize {
        let mail: usize = self
            .mailboxes
            .values()
            .map(|m| {
                m.text.iter().map(SearchText::heap_bytes).sum::<usize>()
                    + m.postings.heap_bytes()
                    + 4 * m.sent_rank.capacity()
            })
            .sum();
        let drives: usize = self
            .drives
            .values()
            .map(|d| {
                d.search
                    .iter()
                    .map(|s| {
                        s.text.heap_bytes()
                            + s.name.heap_bytes()
                            + s.author_text.heap_bytes()
                            + s.author.capacity()
                            + s.ext.capacity()
                    })
                    .sum::<usize>()
                    + d.postings.heap_bytes()
            })
            .sum();
        let chats = |c: &ChatSearch| {
            c.plain.iter().map(String::capacity).sum::<usize>() + c.index.heap_bytes()
        };
        mail + drives
            + self.calendar_search.iter().map(TextIndex::heap_bytes).sum::<usize>()
            + self.chat_search.iter().map(chats).sum::<usize>()
            + self.channel_search.iter().flatten().map(chats).sum::<usize>()
    }
}

fn index_tenant(pos: usize, t: &Tenant) -> TenantIndex {
    let mut idx = TenantIndex { pos, ..TenantIndex::default() };
    let group_ids: HashMap<String, Uuid> =
        t.groups.iter().map(|g| (g.display_name.to_ascii_lowercase(), g.id)).collect();
    for (i, u) in t.users.iter().enumerate() {
        idx.users_by_oid.insert(u.oid, i);
        idx.users_by_name.insert(u.upn.to_ascii_lowercase(), i);
        idx.users_by_name.entry(u.mail.to_ascii_lowercase()).or_insert(i);
        let groups = u
            .groups
            .iter()
            .filter_map(|g| group_ids.get(&g.to_ascii_lowercase()).copied())
            .collect();
        idx.user_groups.insert(u.oid, groups);
    }
    for (i, mb) in t.content.mailboxes.iter().enumerate() {
        idx.mailboxes.insert(mb.owner, index_mailbox(i, mb));
    }
    for (i, c) in t.content.calendars.iter().enumerate() {
        idx.calendars.insert(c.owner, i);
        // The text `event` search matches (subject, preview, location, organiser).
        let text = c
            .events
            .iter()
            .map(|e| {
                SearchText::new(&format!(
                    "{} {} {} {} {}",
                    e.subject,
                    e.body_preview,
                    e.location.as_deref().unwrap_or(""),
                    e.organizer.name,
                    e.organizer.address
                ))
            })
            .collect();
        idx.calendar_search.push(TextIndex::new(text));
    }
    // First user with the oid wins, as a linear search over `users` would find.
    let mut author_of: HashMap<Uuid, &str> = HashMap::with_capacity(t.users.len());
    for u in &t.users {
        author_of.entry(u.oid).or_insert(u.display_name.as_str());
    }
    for (i, d) in t.content.drives.iter().enumerate() {
        let mut di = DriveIndex {
            pos: i,
            items: HashMap::with_capacity(d.items.len()),
            children: HashMap::new(),
            root: None,
            search: Vec::with_capacity(d.items.len()),
            postings: PostingIndex::default(),
        };
        for (j, item) in d.items.iter().enumerate() {
            di.items.insert(item.id.clone(), j);
            let author =
                author_of.get(&item.created_by).map(|n| (*n).to_owned()).unwrap_or_default();
            let text = SearchText::new(&format!(
                "{} {} {}",
                item.name,
                crate::text::file_text(item),
                author
            ));
            let ext = item.name.rsplit_once('.').map(|(_, e)| e.to_owned()).unwrap_or_default();
            let (name, author_text) = (SearchText::new(&item.name), SearchText::new(&author));
            di.search.push(ItemSearch { text, author, name, author_text, ext });
            match &item.parent_id {
                Some(parent) => di.children.entry(parent.clone()).or_default().push(j),
                None => di.root = Some(j),
            }
        }
        if let (fixtures::DriveType::Business, Some(owner)) = (d.drive_type, d.owner) {
            idx.onedrive_by_owner.insert(owner, d.id.clone());
        }
        di.postings = PostingIndex::build(di.search.iter().map(|s| &s.text));
        idx.drives.insert(d.id.clone(), di);
    }
    for (i, s) in t.content.sites.iter().enumerate() {
        idx.sites.insert(s.id.clone(), i);
    }
    for (i, c) in t.content.chats.iter().enumerate() {
        idx.chats.insert(c.id.clone(), i);
        idx.chat_search.push(chat_search(&c.messages));
    }
    for (i, team) in t.content.teams.iter().enumerate() {
        idx.teams.insert(team.id.to_string(), i);
        idx.channel_search.push(team.channels.iter().map(|c| chat_search(&c.messages)).collect());
    }
    idx
}

fn index_mailbox(pos: usize, mb: &fixtures::Mailbox) -> MailboxIndex {
    let mut order: Vec<u32> = (0..mb.messages.len() as u32).collect();
    order.sort_by(|a, b| mb.messages[*b as usize].received.cmp(&mb.messages[*a as usize].received));
    let mut by_id = HashMap::with_capacity(mb.messages.len());
    let mut by_immutable_id = HashMap::with_capacity(mb.messages.len());
    let mut text = Vec::with_capacity(mb.messages.len());
    for (i, m) in mb.messages.iter().enumerate() {
        by_id.insert(m.id.clone(), i as u32);
        by_immutable_id.insert(m.immutable_id.clone(), i as u32);
        let mut full = String::with_capacity(m.subject.len() + m.body.len() + 64);
        for part in [&m.subject, &m.from.name, &m.from.address, &m.body] {
            full.push_str(part);
            full.push(' ');
        }
        for a in &m.attachments {
            full.push_str(&a.name);
            full.push(' ');
        }
        text.push(SearchText::new(&full));
    }
    let postings = PostingIndex::build(&text);
    let mut by_sent: Vec<u32> = (0..mb.messages.len() as u32).collect();
    // Stable, so equal times keep position order.
    by_sent.sort_by(|a, b| mb.messages[*b as usize].sent.cmp(&mb.messages[*a as usize].sent));
    let mut sent_rank = vec![0; by_sent.len()];
    for (rank, pos) in by_sent.into_iter().enumerate() {
        sent_rank[pos as usize] = rank as u32;
    }
    MailboxIndex { pos, by_received_desc: order, by_id, by_immutable_id, sent_rank, text, postings }
}
