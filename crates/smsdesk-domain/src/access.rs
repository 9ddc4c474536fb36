//! Who is asking, and what their team's plan lets them do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{TeamId, UserId};

/// A team's subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// No status refresh.
    Free,
    /// Status refresh included.
    Pro,
    /// Status refresh included.
    Enterprise,
}

impl Plan {
    /// Whether the plan includes on-demand status refresh (Pro and Enterprise do, Free does not).
    pub fn allows_status_refresh(self) -> bool {
        matches!(self, Self::Pro | Self::Enterprise)
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    /// Reads the stored spelling.
    ///
    /// # Errors
    /// [`UnknownPlan`] for anything but `free`, `pro` or `enterprise`.
    pub fn parse(value: &str) -> Result<Self, UnknownPlan> {
        match value {
            "free" => Ok(Self::Free),
            "pro" => Ok(Self::Pro),
            "enterprise" => Ok(Self::Enterprise),
            other => Err(UnknownPlan(other.to_owned())),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan name that is not `free`, `pro` or `enterprise`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan '{0}': expected free, pro or enterprise")]
pub struct UnknownPlan(pub String);

/// A user's role within their team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May change the team's settings, such as its Twilio credentials.
    Admin,
    /// May send and refresh messages.
    Member,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

/// The authenticated caller of a use case. Every use case is scoped to `team_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// The caller's team: the only team whose data the call may read or write.
    pub team_id: TeamId,
    /// The caller (bulk refresh cool-downs are per user).
    pub user_id: UserId,
    /// The team's plan, which gates refresh.
    pub plan: Plan,
    /// The caller's role.
    pub role: Role,
}

/// Proof that the caller administers one team: what changing a team's settings (its Twilio
/// integration, its API keys) requires. Obtained from [`TeamAdmin::of`] for a requester, or
/// [`TeamAdmin::operator`] for the operator at the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamAdmin {
    team: TeamId,
    user: Option<UserId>,
}

impl TeamAdmin {
    /// The admin rule: only a team's admins administer it. `None` for members.
    pub fn of(requester: &Requester) -> Option<Self> {
        (requester.role == Role::Admin).then_some(Self {
            team: requester.team_id,
            user: Some(requester.user_id),
        })
    }

    /// The operator of the deployment, who administers every team (the CLI). Not for requests
    /// authenticated by API key: use [`TeamAdmin::of`].
    pub fn operator(team: TeamId) -> Self {
        Self { team, user: None }
    }

    /// The team this proof is for.
    pub fn team(self) -> TeamId {
        self.team
    }

    /// The admin's user, when the proof comes from a requester.
    pub fn user(self) -> Option<UserId> {
        self.user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paid_plans_may_refresh() {
        assert!(!Plan::Free.allows_status_refresh());
        assert!(Plan::Pro.allows_status_refresh());
        assert!(Plan::Enterprise.allows_status_refresh());
    }

    #[test]
    fn plans_and_roles_round_trip_their_spelling() {
        for plan in [Plan::Free, Plan::Pro, Plan::Enterprise] {
            assert_eq!(Plan::parse(plan.as_str()), Ok(plan));
        }
        assert!(Plan::parse("gold").is_err());
        for role in [Role::Admin, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
