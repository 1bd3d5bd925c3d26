//! Typed Graph resources: the fields of each shape the tools read, decoded straight from the
//! response bytes (no `serde_json::Value` tree in between, so fields nobody reads are skipped,
//! not allocated).
//!
//! # Leniency
//! Graph adds fields and is loosely typed in places, and the tools must answer with what they
//! can read rather than fail a whole page on one odd field. So every model here:
//! * ignores unknown fields (Graph adds them all the time);
//! * reads a missing, `null` or mistyped scalar as absent ([`lenient::string`] and friends);
//! * reads a mistyped object as absent ([`lenient::object`]) and a mistyped list as empty
//!   ([`lenient::list`], whose non-object elements read as the default model).
//!
//! Shapes: `reference/graph.md` §9 and the fake in `fake-graph/`.

pub mod lenient;

use serde::Deserialize;

/// One page of an OData collection (`value` and `@odata.nextLink`).
#[derive(Debug, Deserialize)]
#[serde(bound = "T: Deserialize<'de> + Default")]
pub struct ODataPage<T> {
    #[serde(default = "Vec::new", deserialize_with = "lenient::list")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default, deserialize_with = "lenient::string")]
    pub next_link: Option<String>,
}

impl<T> Default for ODataPage<T> {
    fn default() -> Self {
        Self { value: Vec::new(), next_link: None }
    }
}

/// Graph's `emailAddress` wrapper (`from`, `toRecipients`, `organizer`, `attendees`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default, deserialize_with = "lenient::object")]
    pub email_address: Option<EmailAddress>,
}

/// A name and an address.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EmailAddress {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub address: Option<String>,
}

/// `body` of a message, event or chat message.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    #[serde(default, deserialize_with = "lenient::string")]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content: Option<String>,
}

/// An Outlook message (`/me/messages`, a `message` search hit's resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub from: Option<Recipient>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub to_recipients: Vec<Recipient>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub cc_recipients: Vec<Recipient>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub received_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub sent_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub body_preview: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub body: Option<ItemBody>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub has_attachments: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_link: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub importance: Option<String>,
}

/// A mail attachment (`/me/messages/{id}/attachments[/{id}]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_inline: Option<bool>,
    /// Base64 content of a file attachment (absent for item and reference attachments).
    #[serde(default, deserialize_with = "lenient::string")]
    pub content_bytes: Option<String>,
}

/// Graph's `dateTimeTimeZone`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    #[serde(default, deserialize_with = "lenient::string")]
    pub date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub time_zone: Option<String>,
}

/// An event's `location`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
}

/// A calendar event (`calendarView`, `/me/events/{id}`, an `event` search hit's resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub start: Option<DateTimeTimeZone>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub end: Option<DateTimeTimeZone>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub location: Option<Location>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub organizer: Option<Recipient>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub attendees: Vec<Recipient>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub body: Option<ItemBody>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub body_preview: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_all_day: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_cancelled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub show_as: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_link: Option<String>,
}

impl Event {
    /// The location's display name.
    pub fn location_name(&self) -> Option<&str> {
        self.location.as_ref()?.display_name.as_deref()
    }
}

/// Graph's `identitySet`, of which the tools read the user.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IdentitySet {
    #[serde(default, deserialize_with = "lenient::object")]
    pub user: Option<Identity>,
}

impl IdentitySet {
    /// The user's display name.
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref()?.display_name.as_deref()
    }
}

/// One identity of an `identitySet`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
}

/// A chat message's `channelIdentity`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelIdentity {
    /// Whether a team is named (a channel message), whatever its value's type.
    #[serde(default, deserialize_with = "lenient::not_null")]
    pub team_id: bool,
}

/// A Teams chat message (`/chats/{id}/messages[/{id}]`, a `chatMessage` search hit's resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub chat_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub message_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub created_date_time: Option<String>,
    /// Search hits give the sender as an `emailAddress` wrapper...
    #[serde(default, deserialize_with = "lenient::object")]
    pub from: Option<ChatSender>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub body: Option<ItemBody>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub channel_identity: Option<ChannelIdentity>,
}

/// A chat message's `from`: an `identitySet` on `/chats` (`user.displayName`), an
/// `emailAddress` wrapper on a search hit; both are read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSender {
    #[serde(default, deserialize_with = "lenient::object")]
    pub user: Option<Identity>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub email_address: Option<EmailAddress>,
}

/// A drive item's `parentReference`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReference {
    #[serde(default, deserialize_with = "lenient::string")]
    pub drive_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub site_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub path: Option<String>,
}

/// A drive item's `file` facet.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    #[serde(default, deserialize_with = "lenient::string")]
    pub mime_type: Option<String>,
}

/// A OneDrive or SharePoint drive item (`/drives/{d}/items/{i}`, `children`, `/shares/…`, a
/// `driveItem` search hit's resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub size: Option<u64>,
    /// Graph's `folder` facet: present on folders, whatever it holds (even `null`).
    #[serde(default, deserialize_with = "lenient::present")]
    pub folder: bool,
    #[serde(default, deserialize_with = "lenient::object")]
    pub file: Option<FileFacet>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_modified_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub last_modified_by: Option<IdentitySet>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub parent_reference: Option<ItemReference>,
}

impl DriveItem {
    /// The drive the item is in.
    pub fn drive_id(&self) -> Option<&str> {
        self.parent_reference.as_ref()?.drive_id.as_deref()
    }

    /// The site the item is in, when Graph says.
    pub fn site_id(&self) -> Option<&str> {
        self.parent_reference.as_ref()?.site_id.as_deref()
    }
}

/// A SharePoint list item with its `fields` expanded: the fields are the list's own columns,
/// an open set, so they stay JSON values.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListItem {
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_modified_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A SharePoint site (a `site` search hit's resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub web_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: Option<String>,
}

/// A directory user (`/me`, `/users`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mail: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_principal_name: Option<String>,
}

impl User {
    /// The address mail reaches the user at: `mail`, else the UPN, else empty.
    pub fn address(&self) -> &str {
        self.mail.as_deref().or(self.user_principal_name.as_deref()).unwrap_or_default()
    }
}

/// Graph's `workingHours` (mailbox settings, `getSchedule`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingHours {
    /// The day names; `None` when Graph gave no list.
    #[serde(default, deserialize_with = "lenient::strings")]
    pub days_of_week: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub time_zone: Option<TimeZoneBase>,
}

impl WorkingHours {
    /// The zone's name.
    pub fn time_zone_name(&self) -> Option<&str> {
        self.time_zone.as_ref()?.name.as_deref()
    }
}

/// Graph's `timeZoneBase`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TimeZoneBase {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
}

/// One `scheduleInformation` of a `getSchedule` answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInformation {
    #[serde(default, deserialize_with = "lenient::string")]
    pub schedule_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub schedule_items: Vec<ScheduleItem>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub working_hours: Option<WorkingHours>,
    /// Set (to anything but `null`) when the schedule could not be read.
    #[serde(default, deserialize_with = "lenient::non_null")]
    pub error: Option<FreeBusyError>,
}

/// One busy period of a schedule.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ScheduleItem {
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub start: Option<DateTimeTimeZone>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub end: Option<DateTimeTimeZone>,
}

/// Why a schedule could not be read.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FreeBusyError {
    #[serde(default, deserialize_with = "lenient::string")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistyped_fields_read_as_absent_and_unknown_fields_are_ignored() {
        let m: Message = serde_json::from_str(
            r#"{"id": 7, "subject": "Hi", "from": "someone", "toRecipients": {"x": 1},
                "ccRecipients": [{"emailAddress": {"name": "Ada", "address": null}}, 3],
                "hasAttachments": "yes", "body": {"content": ["x"]}, "newField": {"a": [1]}}"#,
        )
        .expect("lenient");
        assert_eq!((m.id, m.subject.as_deref()), (None, Some("Hi")));
        assert!(m.from.is_none() && m.to_recipients.is_empty());
        assert_eq!(m.cc_recipients.len(), 2);
        let ada = m.cc_recipients[0].email_address.as_ref().expect("an address");
        assert_eq!((ada.name.as_deref(), ada.address.as_deref()), (Some("Ada"), None));
        assert!(m.cc_recipients[1].email_address.is_none());
        assert_eq!(m.has_attachments, None);
        assert_eq!(m.body.and_then(|b| b.content), None);
    }

    #[test]
    fn facets_count_by_presence_and_errors_by_not_being_null() {
        let folder: DriveItem = serde_json::from_str(r#"{"folder": null}"#).expect("item");
        let file: DriveItem = serde_json::from_str(r#"{"file": {}}"#).expect("item");
        assert!(folder.folder && !file.folder);
        let channel: ChannelIdentity = serde_json::from_str(r#"{"teamId": 3}"#).expect("identity");
        let chat: ChannelIdentity = serde_json::from_str(r#"{"teamId": null}"#).expect("identity");
        assert!(channel.team_id && !chat.team_id);
        let failed: ScheduleInformation =
            serde_json::from_str(r#"{"error": "busy"}"#).expect("schedule");
        let fine: ScheduleInformation =
            serde_json::from_str(r#"{"error": null}"#).expect("schedule");
        assert!(failed.error.is_some_and(|e| e.message.is_none()) && fine.error.is_none());
    }

    #[test]
    fn pages_and_day_lists_are_lenient() {
        let page: ODataPage<User> =
            serde_json::from_str(r#"{"value": "x", "@odata.nextLink": 5}"#).expect("page");
        assert!(page.value.is_empty() && page.next_link.is_none());
        let hours: WorkingHours =
            serde_json::from_str(r#"{"daysOfWeek": ["monday", 1, "friday"]}"#).expect("hours");
        assert_eq!(hours.days_of_week, Some(vec!["monday".to_owned(), "friday".to_owned()]));
        let none: WorkingHours = serde_json::from_str(r#"{"daysOfWeek": "monday"}"#).expect("h");
        assert_eq!(none.days_of_week, None);
    }
}
