//! `bootstrap list`: deployments found through their labels.

use bootstrap_core::flow;

use crate::cli::ListArgs;
use crate::output::Output;
use crate::providers;
use crate::settings::Connection;

/// Lists deployments.
pub async fn run(a: &ListArgs) -> anyhow::Result<()> {
    let conn = Connection::resolve(a.provider, a.endpoint.as_deref(), None, a.output)?
        .with_context(a.context.as_deref())?
        .with_flags(a.provider_flags.values())?;
    let p = providers::build(&conn).await?;
    let deployments = flow::list(p.as_ref(), &conn.flow).await?;
    Output::new(conn.output).list(&deployments)
}
