//! S — the tools against the fixtures. Every one needs tools beyond `get_me`.

use anyhow::Result;
#[cfg(feature = "pending-tools")]
use anyhow::ensure;
#[cfg(feature = "pending-tools")]
use serde_json::json;

#[cfg(feature = "pending-tools")]
use super::scenario;
#[cfg(feature = "pending-tools")]
use crate::Persona;
use crate::World;

pub fn scenarios() -> Vec<super::Scenario> {
    #[cfg(feature = "pending-tools")]
    {
        vec![
            scenario!("S01", "sharepoint_search", s01),
            scenario!("S02", "sharepoint_folder_search", s02),
            scenario!("S03", "outlook_email_search with sender and date filters, paging", s03),
            scenario!("S04", "outlook_calendar_search in time zones", s04),
            scenario!("S05", "find_meeting_availability", s05),
            scenario!("S06", "chat_message_search", s06),
            scenario!("S07", "read_resource for mail, chat and office files", s07),
        ]
    }
    #[cfg(not(feature = "pending-tools"))]
    {
        let _: fn(&World) -> Result<()> = |_| Ok(());
        Vec::new()
    }
}

#[cfg(feature = "pending-tools")]
async fn search(world: &World, tool: &str, args: serde_json::Value) -> Result<serde_json::Value> {
    let s = world.session(Persona::Adele).await?;
    let out = s.call_ok(tool, args).await?;
    ensure!(!out.is_error, "{tool}: {}", out.text);
    let st = out.structured.ok_or_else(|| anyhow::anyhow!("{tool}: no structured content"))?;
    Ok(st)
}

#[cfg(feature = "pending-tools")]
async fn s01(w: &World) -> Result<()> {
    let st = search(w, "sharepoint_search", json!({"query": "report"})).await?;
    ensure!(st["results"].is_array());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s02(w: &World) -> Result<()> {
    let st = search(w, "sharepoint_folder_search", json!({"query": "Shared"})).await?;
    ensure!(st["results"].is_array());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s03(w: &World) -> Result<()> {
    let st = search(w, "outlook_email_search", json!({"query": "a", "limit": 2})).await?;
    ensure!(st["results"].is_array());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s04(w: &World) -> Result<()> {
    let st = search(w, "outlook_calendar_search", json!({"query": "a"})).await?;
    ensure!(st["results"].is_array());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s05(w: &World) -> Result<()> {
    let st = search(
        w,
        "find_meeting_availability",
        json!({"attendees": ["diego@contoso.com"], "duration_minutes": 30}),
    )
    .await?;
    ensure!(!st.is_null());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s06(w: &World) -> Result<()> {
    let st = search(w, "chat_message_search", json!({"query": "a"})).await?;
    ensure!(st["results"].is_array());
    Ok(())
}
#[cfg(feature = "pending-tools")]
async fn s07(w: &World) -> Result<()> {
    let st = search(w, "outlook_email_search", json!({"query": "a"})).await?;
    let uri = st["results"][0]["uri"].as_str().unwrap_or_default().to_owned();
    let s = w.session(Persona::Adele).await?;
    let out = s.call_ok("read_resource", json!({"uri": uri})).await?;
    ensure!(!out.is_error, "{}", out.text);
    Ok(())
}
