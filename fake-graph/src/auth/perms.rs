//! The delegated permission table, least privileged first, after Microsoft's permissions
//! reference and the per-API pages (graph.md §11). Application permissions are the same names
//! (`roles`), which is accurate enough for the few app-only calls a test may make.

use crate::error::Service::{self, *};

/// One row of the permission table: the delegated scopes any of which allows an operation.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    pub operation: &'static str,
    pub any_of: &'static [&'static str],
    pub service: Service,
}

pub const ME: Permission = Permission {
    operation: "GET /me",
    any_of: &[
        "User.Read",
        "User.ReadWrite",
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
    ],
    service: Directory,
};
pub const USERS: Permission = Permission {
    operation: "GET /users",
    any_of: &["User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All"],
    service: Directory,
};
pub const MAILBOX_SETTINGS: Permission = Permission {
    operation: "GET /me/mailboxSettings",
    any_of: &["MailboxSettings.Read", "MailboxSettings.ReadWrite"],
    service: Outlook,
};
/// Listing and reading messages; `Mail.ReadBasic` gives no `body`/`bodyPreview`.
pub const MESSAGES: Permission = Permission {
    operation: "GET /me/messages",
    any_of: &["Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"],
    service: Outlook,
};
pub const MESSAGE_BODIES: &[&str] = &["Mail.Read", "Mail.ReadWrite"];
pub const MESSAGES_SHARED: Permission = Permission {
    operation: "GET /users/{id}/messages",
    any_of: &["Mail.Read.Shared", "Mail.ReadWrite.Shared"],
    service: Outlook,
};
pub const ATTACHMENTS: Permission = Permission {
    operation: "GET /me/messages/{id}/attachments",
    any_of: &["Mail.Read", "Mail.ReadWrite"],
    service: Outlook,
};
pub const MAIL_FOLDERS: Permission = Permission {
    operation: "GET /me/mailFolders",
    any_of: &["Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"],
    service: Outlook,
};
/// Events; `Calendars.ReadBasic` gives no body.
pub const EVENTS: Permission = Permission {
    operation: "GET /me/events",
    any_of: &["Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"],
    service: Outlook,
};
pub const EVENT_BODIES: &[&str] = &["Calendars.Read", "Calendars.ReadWrite"];
pub const GET_SCHEDULE: Permission = Permission {
    operation: "POST /me/calendar/getSchedule",
    any_of: &["Calendars.Read", "Calendars.ReadWrite"],
    service: Outlook,
};
pub const FIND_MEETING_TIMES: Permission = Permission {
    operation: "POST /me/findMeetingTimes",
    any_of: &["Calendars.Read.Shared", "Calendars.ReadWrite.Shared"],
    service: Outlook,
};
/// The signed-in user's own drive.
pub const OWN_FILES: Permission = Permission {
    operation: "GET /me/drive",
    any_of: &[
        "Files.Read",
        "Files.ReadWrite",
        "Files.Read.All",
        "Files.ReadWrite.All",
        "Sites.Read.All",
        "Sites.ReadWrite.All",
    ],
    service: SharePoint,
};
/// Any drive the user can access.
pub const ALL_FILES: Permission = Permission {
    operation: "GET /drives/{id}/items/{id}",
    any_of: &["Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All", "Sites.ReadWrite.All"],
    service: SharePoint,
};
/// `root/search(q=…)` needs Sites scopes (microsoft-graph-docs-contrib#8626).
pub const DRIVE_SEARCH: Permission = Permission {
    operation: "GET /drives/{id}/root/search",
    any_of: &["Sites.Read.All", "Sites.ReadWrite.All"],
    service: SharePoint,
};
pub const SITES: Permission = Permission {
    operation: "GET /sites/{id}",
    any_of: &["Sites.Read.All", "Sites.ReadWrite.All"],
    service: SharePoint,
};
pub const SEARCH_DRIVE_ITEMS: Permission = Permission {
    operation: "POST /search/query driveItem",
    any_of: &["Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All", "Sites.ReadWrite.All"],
    service: SharePoint,
};
pub const SEARCH_SITES: Permission = Permission {
    operation: "POST /search/query listItem|list|site",
    any_of: &["Sites.Read.All", "Sites.ReadWrite.All"],
    service: SharePoint,
};
pub const SEARCH_MESSAGES: Permission = Permission {
    operation: "POST /search/query message",
    any_of: &["Mail.Read", "Mail.ReadWrite"],
    service: Outlook,
};
pub const SEARCH_EVENTS: Permission = Permission {
    operation: "POST /search/query event",
    any_of: &["Calendars.Read", "Calendars.ReadWrite"],
    service: Outlook,
};
pub const SEARCH_CHAT: Permission = Permission {
    operation: "POST /search/query chatMessage",
    any_of: &["Chat.Read", "Chat.ReadWrite", "ChannelMessage.Read.All"],
    service: Teams,
};
pub const CHATS: Permission = Permission {
    operation: "GET /me/chats",
    any_of: &["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"],
    service: Teams,
};
pub const CHAT_MESSAGES: Permission = Permission {
    operation: "GET /chats/{id}/messages",
    any_of: &["Chat.Read", "Chat.ReadWrite"],
    service: Teams,
};
pub const CHANNELS: Permission = Permission {
    operation: "GET /teams/{id}/channels",
    any_of: &["Channel.ReadBasic.All", "ChannelSettings.Read.All", "ChannelSettings.ReadWrite.All"],
    service: Teams,
};
pub const CHANNEL_MESSAGES: Permission = Permission {
    operation: "GET /teams/{id}/channels/{id}/messages",
    any_of: &["ChannelMessage.Read.All"],
    service: Teams,
};
