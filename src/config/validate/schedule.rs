//! `[clusters.X.incidents]` and `[clusters.X.schedule]`: where chops posts on its own about a
//! cluster, and when its pre-flight runs.

use super::Problems;
use crate::config::ClusterConfig;
use crate::domain::url;

pub(super) fn check(raw: &str, cl: &ClusterConfig, p: &mut Problems<'_>) {
    let name = url::shown(raw);
    if let Some(i) = &cl.incidents {
        if i.channel == 0 {
            p.add(
                format!("clusters.{name}.incidents.channel"),
                "must be a Discord channel id",
            );
        }
    }
    if let Some(s) = &cl.schedule {
        if let Err(problems) = s.parse() {
            for (key, message) in problems {
                p.add(format!("clusters.{name}.schedule.{key}"), message);
            }
        }
        if cl.incidents.is_none() {
            p.add(
                format!("clusters.{name}.schedule"),
                "needs [clusters.NAME.incidents] channel = <id>: the pre-flight posts there",
            );
        }
    }
}
