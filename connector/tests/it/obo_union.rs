//! One On-Behalf-Of exchange per user: every tool is served by one token for the union of the
//! tools' scopes; a partly consented tenant falls back to per-tool exchanges, boundedly.

use fixtures::model::GrantResource;
use serde_json::{Value, json};

use crate::tools_support::{Persona, ToolsWorld};

/// The OBO exchanges fake-entra saw for `who`, as (granted, requested scopes).
fn exchanges(world: &ToolsWorld, who: &Persona) -> Vec<(bool, Vec<String>)> {
    world
        .entra
        .journal()
        .into_iter()
        .filter(|e| e.grant == "on_behalf_of" && e.user_id == Some(who.oid))
        .map(|e| (e.issued(), e.scopes))
        .collect()
}

fn names(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// One call of each search tool plus `get_me` (every scope set the tools use).
async fn call_every_tool(world: &ToolsWorld, who: &Persona) -> Vec<(&'static str, Value)> {
    let calls: [(&str, Value); 6] = [
        ("get_me", json!({})),
        ("outlook_email_search", json!({"query": "budget"})),
        ("outlook_calendar_search", json!({"query": "weekly sync"})),
        ("chat_message_search", json!({"query": "Q3 budget"})),
        ("sharepoint_search", json!({"query": "budget"})),
        ("sharepoint_folder_search", json!({"name": "Specs"})),
    ];
    let mut out = Vec::new();
    for (tool, arguments) in calls {
        out.push((tool, world.call_tool(who, tool, arguments).await));
    }
    out
}

#[tokio::test]
async fn tool_calls_of_every_kind_by_one_user_make_exactly_one_obo_exchange() {
    // Arrange
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    // Act
    let listed = world.rpc(&adele, "tools/list", json!({})).await;
    let first = call_every_tool(&world, &adele).await;
    let second = call_every_tool(&world, &adele).await;
    // Assert
    let offered = listed.pointer("/result/tools").and_then(Value::as_array).map_or(0, Vec::len);
    assert_eq!(offered, 8, "{listed:#}");
    for (tool, result) in first.iter().chain(&second) {
        assert_ne!(result.get("isError"), Some(&json!(true)), "{tool}: {result:#}");
    }
    let seen = exchanges(&world, &adele);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (issued, scopes) = &seen[0];
    assert!(*issued);
    for scope in ["Mail.Read", "Chat.Read", "Sites.Read.All", "User.Read", "MailboxSettings.Read"] {
        assert!(names(scopes).contains(scope), "{scope} missing from {scopes:?}");
    }
}

#[tokio::test]
async fn a_tenant_without_one_permission_keeps_its_other_tools_with_bounded_exchanges() {
    // Arrange: Contoso withdraws Chat.Read before Adele's first call.
    let world = ToolsWorld::start().await;
    world
        .entra
        .revoke_consent("contoso", world.entra.connector_id(), GrantResource::Graph, &["Chat.Read"])
        .expect("revoke");
    let adele = world.persona("adele@contoso.com");
    // Act
    let first = call_every_tool(&world, &adele).await;
    let after_first = exchanges(&world, &adele);
    let second = call_every_tool(&world, &adele).await;
    let after_second = exchanges(&world, &adele);
    // Assert: only the chat tool is refused, naming the missing permission.
    for (tool, result) in first.iter().chain(&second) {
        if *tool == "chat_message_search" {
            assert_eq!(result.get("isError"), Some(&json!(true)), "{result:#}");
            assert!(ToolsWorld::text(result).contains("Chat.Read"), "{result:#}");
        } else {
            assert_ne!(result.get("isError"), Some(&json!(true)), "{tool}: {result:#}");
        }
    }
    // The union is asked for once; the refusal is remembered for the reuse window.
    let union_asks = |seen: &[(bool, Vec<String>)]| {
        seen.iter().filter(|(_, s)| names(s).contains("Mail.Read") && s.len() > 5).count()
    };
    assert_eq!(union_asks(&after_first), 1, "{after_first:?}");
    assert_eq!(union_asks(&after_second), 1, "{after_second:?}");
    // Granted per-tool tokens are cached: the second round only repeats the refused chat
    // exchanges (get_me's tool list, the call's own, the one naming the missing permission).
    let new: Vec<_> = after_second[after_first.len()..].to_vec();
    assert!(new.iter().all(|(issued, s)| !issued && names(s).contains("Chat.Read")), "{new:?}");
    assert!(new.len() <= 3, "{new:?}");
    // The first round: the union, each tool's scope set once (get_me lists the granted
    // tools), the zone's own, and the refused chat exchanges.
    assert!(after_first.len() <= 12, "{after_first:?}");
}

#[tokio::test]
async fn concurrent_first_calls_of_one_user_share_one_exchange() {
    // Arrange
    let world = ToolsWorld::start().await;
    let diego = world.persona("diego@contoso.com");
    let tools = ["outlook_email_search", "get_me", "chat_message_search", "sharepoint_search"];
    // Act
    let results = futures::future::join_all((0..32).map(|i| {
        let (world, diego) = (&world, &diego);
        async move {
            let tool = tools[i % tools.len()];
            let arguments = if tool == "get_me" { json!({}) } else { json!({"query": "budget"}) };
            (tool, world.call_tool(diego, tool, arguments).await)
        }
    }))
    .await;
    // Assert
    for (tool, result) in &results {
        assert_ne!(result.get("isError"), Some(&json!(true)), "{tool}: {result:#}");
    }
    let seen = exchanges(&world, &diego);
    assert_eq!(seen.len(), 1, "{seen:?}");
}
