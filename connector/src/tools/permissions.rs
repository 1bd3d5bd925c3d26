//! The delegated Microsoft Graph permissions the connector requests, which tool needs each, and
//! why: the source of `m365-connector permissions` and of the admin-consent URL.

use super::{
    availability::FIND_MEETING_AVAILABILITY, calendar::OUTLOOK_CALENDAR_SEARCH,
    chat::CHAT_MESSAGE_SEARCH, mail::OUTLOOK_EMAIL_SEARCH, me::GET_ME, pipeline::Tool,
    read::READ_RESOURCE, sharepoint::SHAREPOINT_FOLDER_SEARCH, sharepoint::SHAREPOINT_SEARCH,
};
use crate::{config::Settings, domain::ScopeSet};

/// The Graph resource prefix of delegated scopes in consent and token requests.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// One delegated permission.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    pub name: &'static str,
    pub tools: &'static [&'static Tool],
    pub why: &'static str,
}

/// Every delegated Graph permission, least privilege first. Never a write permission and never
/// `offline_access`: the connector holds no refresh tokens. Each lists every tool that uses it
/// (a test checks this against [`TOOL_NEEDS`]).
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        name: "User.Read",
        tools: &[&GET_ME, &FIND_MEETING_AVAILABILITY],
        why: "read the signed-in user's profile (and their own free/busy address)",
    },
    Permission {
        name: "MailboxSettings.Read",
        tools: &[
            &GET_ME,
            &SHAREPOINT_SEARCH,
            &SHAREPOINT_FOLDER_SEARCH,
            &OUTLOOK_EMAIL_SEARCH,
            &OUTLOOK_CALENDAR_SEARCH,
            &FIND_MEETING_AVAILABILITY,
            &CHAT_MESSAGE_SEARCH,
            &READ_RESOURCE,
        ],
        why: "optional: show times in the user's mailbox time zone and working hours (UTC without it)",
    },
    Permission {
        name: "Mail.Read",
        tools: &[&OUTLOOK_EMAIL_SEARCH, &READ_RESOURCE],
        why: "search and read the user's mail",
    },
    Permission {
        name: "Mail.Read.Shared",
        tools: &[&OUTLOOK_EMAIL_SEARCH],
        why: "search a shared mailbox the user can open (only when one is asked for)",
    },
    Permission {
        name: "Calendars.Read",
        tools: &[&OUTLOOK_CALENDAR_SEARCH, &FIND_MEETING_AVAILABILITY, &READ_RESOURCE],
        why: "search and read the user's calendar and look up free/busy",
    },
    Permission {
        name: "Calendars.Read.Shared",
        tools: &[&OUTLOOK_CALENDAR_SEARCH],
        why: "search a shared calendar the user can open (only when one is asked for)",
    },
    Permission {
        name: "User.ReadBasic.All",
        tools: &[&FIND_MEETING_AVAILABILITY],
        why: "resolve attendee names to mailboxes",
    },
    Permission {
        name: "Chat.Read",
        tools: &[&CHAT_MESSAGE_SEARCH, &READ_RESOURCE],
        why: "search and read the user's Teams chats",
    },
    Permission {
        name: "Files.Read.All",
        tools: &[&READ_RESOURCE],
        why: "read files the user can open in OneDrive and SharePoint",
    },
    Permission {
        name: "Sites.Read.All",
        tools: &[&SHAREPOINT_SEARCH, &SHAREPOINT_FOLDER_SEARCH, &READ_RESOURCE],
        why: "search SharePoint and OneDrive documents, pages and folders the user can access",
    },
];

/// The mailbox time zone's permission. It is optional for every tool: it is part of the union
/// token every call shares ([`union_scopes`]), and when a tenant has not granted it (the union
/// is refused) it is asked for in a scope set of its own, so revoking it never blocks a tool;
/// times are then shown in UTC.
pub const ZONE_SCOPE: &str = "MailboxSettings.Read";

/// Every tool, each with the scope sets it calls Graph with ([`Tool::needs`]). A tool is
/// offered in `tools/list` when at least one of them is granted: `read_resource` reads mail,
/// events, chats or files, each with its own set, and stays useful while any one kind is
/// readable. Optional extras (`Mail.Read.Shared` for a shared mailbox) are not listed there:
/// they are asked for only by the calls that need them.
pub const TOOL_NEEDS: &[&Tool] = super::ALL;

/// The scope sets `tool` calls Graph with (empty for an unknown tool).
pub fn tool_needs(tool: &str) -> &'static [&'static [&'static str]] {
    TOOL_NEEDS.iter().find(|t| t.name == tool).map_or(&[], |t| t.needs)
}

/// Every scope the tools need plus the optional [`ZONE_SCOPE`]: the set one On-Behalf-Of token
/// per user is exchanged for and shared by every tool (see [`crate::obo`]). The optional
/// shared-mailbox extras stay out: they are asked for only by the calls that need them.
pub fn union_scopes() -> ScopeSet {
    TOOL_NEEDS
        .iter()
        .flat_map(|t| t.needs.iter().flat_map(|set| set.iter().copied()))
        .chain([ZONE_SCOPE])
        .collect()
}

/// Whether `granted` allows `tool`: one of its scope sets is wholly granted.
pub fn tool_granted(tool: &str, granted: &ScopeSet) -> bool {
    tool_needs(tool).iter().any(|set| set.iter().all(|s| granted.contains(s)))
}

/// Human-readable table for `m365-connector permissions`.
pub fn describe() -> String {
    let mut out =
        String::from("Delegated Microsoft Graph permissions (read-only; no offline_access):\n");
    for p in PERMISSIONS {
        out.push_str(&format!(
            "  {:<22} tools: {:<60} why: {}\n",
            p.name,
            p.tools.iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_a_tool_uses_lists_that_tool_and_no_other() {
        for tool in TOOL_NEEDS {
            for scope in tool.needs.iter().flat_map(|set| set.iter()) {
                let p = PERMISSIONS.iter().find(|p| p.name == *scope).expect(scope);
                assert!(
                    p.tools.iter().any(|t| t.name == tool.name),
                    "{scope} does not list {}",
                    tool.name
                );
            }
        }
        // Asked for only when needed: a shared mailbox or calendar; the time zone (every tool).
        let optional = [
            ("Mail.Read.Shared", "outlook_email_search"),
            ("Calendars.Read.Shared", "outlook_calendar_search"),
        ];
        for p in PERMISSIONS {
            for tool in p
                .tools
                .iter()
                .filter(|t| !optional.contains(&(p.name, t.name)) && p.name != ZONE_SCOPE)
            {
                assert!(
                    tool.needs.iter().any(|set| set.contains(&p.name)),
                    "{} lists {}, which never asks for it",
                    p.name,
                    tool.name
                );
            }
        }
    }

    #[test]
    fn a_tool_is_granted_when_one_of_its_scope_sets_is() {
        let mail_only = ScopeSet::from_iter(["mail.read"]);
        assert!(tool_granted("outlook_email_search", &mail_only));
        assert!(tool_granted("read_resource", &mail_only));
        assert!(!tool_granted("sharepoint_search", &mail_only));
        assert!(!tool_granted("get_me", &mail_only));
        assert!(!tool_granted("no_such_tool", &mail_only));
        // The time zone's permission is never required.
        assert!(TOOL_NEEDS.iter().all(|t| t.needs.iter().all(|s| !s.contains(&ZONE_SCOPE))));
    }
}
