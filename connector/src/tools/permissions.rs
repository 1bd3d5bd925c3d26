//! The delegated Microsoft Graph permissions the connector requests, which tool needs each, and
//! why: the source of `m365-connector permissions` and of the admin-consent URL.

use crate::config::Settings;

/// The Graph resource prefix of delegated scopes in consent and token requests.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// One delegated permission.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    pub name: &'static str,
    pub tools: &'static [&'static str],
    pub why: &'static str,
}

/// Every delegated Graph permission, least privilege first. Never a write permission and never
/// `offline_access`: the connector holds no refresh tokens.
pub const PERMISSIONS: &[Permission] = &[
    Permission { name: "User.Read", tools: &["get_me"], why: "read the signed-in user's profile" },
    Permission {
        name: "MailboxSettings.Read",
        tools: &["get_me", "find_meeting_availability"],
        why: "read the user's time zone and working hours",
    },
    Permission {
        name: "Mail.Read",
        tools: &["outlook_email_search", "read_resource"],
        why: "search and read the user's mail",
    },
    Permission {
        name: "Calendars.Read",
        tools: &["outlook_calendar_search", "find_meeting_availability"],
        why: "search the user's calendar and look up free/busy",
    },
    Permission {
        name: "User.ReadBasic.All",
        tools: &["find_meeting_availability"],
        why: "resolve attendee names to mailboxes",
    },
    Permission {
        name: "Chat.Read",
        tools: &["chat_message_search", "read_resource"],
        why: "search and read the user's Teams chats",
    },
    Permission {
        name: "Files.Read.All",
        tools: &["read_resource"],
        why: "read files the user can open in OneDrive and SharePoint",
    },
    Permission {
        name: "Sites.Read.All",
        tools: &["sharepoint_search", "sharepoint_folder_search", "read_resource"],
        why: "search SharePoint and OneDrive documents, pages and folders the user can access",
    },
];

/// Human-readable table for `m365-connector permissions`.
pub fn describe() -> String {
    let mut out =
        String::from("Delegated Microsoft Graph permissions (read-only; no offline_access):\n");
    for p in PERMISSIONS {
        out.push_str(&format!(
            "  {:<22} tools: {:<60} why: {}\n",
            p.name,
            p.tools.join(", "),
            p.why
        ));
    }
    out
}

/// `{authority}/{tenant}/v2.0/adminconsent?client_id=…&scope=…&redirect_uri=…`, with every
/// permission as `https://graph.microsoft.com/<name>`, space-separated and percent-encoded.
pub fn admin_consent_url(settings: &Settings, tenant: &str, redirect_uri: &str) -> String {
    let scope = PERMISSIONS
        .iter()
        .map(|p| format!("{GRAPH_RESOURCE}/{}", p.name))
        .collect::<Vec<_>>()
        .join(" ");
    let base = format!("{}/{}/v2.0/adminconsent", settings.entra.authority_base(), tenant.trim());
    match url::Url::parse(&base) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("client_id", &settings.entra.client_id.to_string())
                .append_pair("scope", &scope)
                .append_pair("redirect_uri", redirect_uri);
            url.to_string()
        }
        Err(_) => base,
    }
}
