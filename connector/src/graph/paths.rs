//! The Graph path of each `m365://` resource and of a share lookup: the one place a domain
//! item becomes a Graph path (a fixed template per kind, ids as encoded segments). Kept with
//! the client so the domain types need not know Graph's URL shapes.

use super::GraphPath;
use crate::domain::uri::{LinkTarget, M365Uri};

impl M365Uri {
    /// The Graph path of the resource itself (metadata), from a fixed template per kind.
    /// Mail and chats always go through `/me` or the chat id, never `/users/{id}` (E7).
    pub fn graph_path(&self) -> GraphPath {
        match self {
            Self::Mail { message, attachment: None } => {
                GraphPath::fixed("/me/messages").segment(message)
            }
            Self::Mail { message, attachment: Some(att) } => {
                GraphPath::fixed("/me/messages").segment(message).then("attachments").segment(att)
            }
            Self::Event { id } => GraphPath::fixed("/me/events").segment(id),
            Self::DriveItem { drive, item } => {
                GraphPath::fixed("/drives").segment(drive).then("items").segment(item)
            }
            Self::ListItem { site, list, item } => GraphPath::fixed("/sites")
                .segment(site)
                .then("lists")
                .segment(list)
                .then("items")
                .segment(item),
            Self::Chat { chat, message: None } => {
                GraphPath::fixed("/chats").segment(chat).then("messages")
            }
            Self::Chat { chat, message: Some(m) } => {
                GraphPath::fixed("/chats").segment(chat).then("messages").segment(m)
            }
        }
    }
}

impl LinkTarget {
    /// The Graph path of a share lookup (`/shares/u!…/driveItem`).
    pub fn share_path(share_id: &str) -> GraphPath {
        GraphPath::fixed("/shares").segment(share_id).then("driveItem")
    }
}
