//! Pure planning: declared state + observed enrolments of one provider -> a [`Plan`].
//!
//! Nothing here does I/O or reads the clock: the caller passes `now`, the observation and the
//! provider's capabilities, so every rule of the reconciliation contract is a plain unit test.

pub mod budget;
pub mod entitlement;
pub mod guarded;
pub mod identity;
pub mod inventory;
pub mod plan;
pub mod planner;
pub mod trigger;

pub use inventory::{Capabilities, Enrolment, Inventory, ProviderUser};
pub use plan::{Action, ActionKind, Approval, ApprovalOffer, EnrolmentDecision, Hold, Plan, Reason, Verdict};
pub use planner::{PlanInput, Target, plan, plan_targeted};

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
