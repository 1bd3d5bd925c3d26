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

/// `deserialize_with` helpers that keep a value of the expected JSON type and read anything
/// else (null, another type, a nested object) as absent, as `Value::as_str` and friends do.
pub mod lenient {
    use serde::{Deserialize, Deserializer, de};
    use std::{fmt, marker::PhantomData};

    struct Keep<T>(PhantomData<T>);

    macro_rules! ignore_others {
        () => {
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        };
    }

    impl<'de> de::Visitor<'de> for Keep<String> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        ignore_others!();
    }

    impl<'de> de::Visitor<'de> for Keep<u64> {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        ignore_others!();
    }

    impl<'de> de::Visitor<'de> for Keep<bool> {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        ignore_others!();
    }

    /// A string, else absent.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Keep::<String>(PhantomData))
    }

    /// A non-negative integer, else absent.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Keep::<u64>(PhantomData))
    }

    /// A boolean, else absent.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(Keep::<bool>(PhantomData))
    }

    /// `true` whenever the field is present, whatever its value (even `null`).
    pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        de::Deserialize::deserialize(d).map(|_: de::IgnoredAny| true)
    }

    /// `true` when the field is present with any value but `null`.
    pub fn not_null<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Option::<de::IgnoredAny>::deserialize(d).map(|v| v.is_some())
    }

    /// A JSON object read as `T`, whatever it holds
    /// (`T`'s own fields being lenient); anything else is absent.
    struct Object<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Object<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(a)).map(Some)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    /// An object as `T`, else absent.
    pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_any(Object::<T>(PhantomData))
    }

    /// A value that is not `null`: an object as `T`, anything else as `T::default()`.
    pub fn non_null<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<Element<T>>::deserialize(d).map(|v| v.map(|e| e.0))
    }

    /// A list element: an object as `T`, anything else as `T::default()` (as walking a
    /// `Value` reads every field of a non-object as absent).
    struct Element<T>(T);

    impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Element<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            object::<D, T>(d).map(|v| Element(v.unwrap_or_default()))
        }
    }

    struct List<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Default> de::Visitor<'de> for List<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(256));
            while let Some(Element(item)) = a.next_element::<Element<T>>()? {
                out.push(item);
            }
            Ok(out)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// A list of objects (each read as `T`, a non-object element as `T::default()`), else
    /// empty.
    pub fn list<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_any(List::<T>(PhantomData))
    }

    /// A list's string elements (others skipped); `None` when the value is not a list.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        struct Text(Option<String>);
        impl<'de> Deserialize<'de> for Text {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                string(d).map(Text)
            }
        }
        struct Strings;
        impl<'de> de::Visitor<'de> for Strings {
            type Value = Option<Vec<String>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(t)) = a.next_element::<Text>()? {
                    out.extend(t);
                }
                Ok(Some(out))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(Strings)
    }
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
