//! The loop's side of budgets (`crate::forward::budget`): a forward
//! client's request counted toward its budget for the name before it goes
//! out (refused with `429` past a limit), and the bytes its connection
//! moves counted as they move (closed past a byte limit).

use std::collections::HashMap;
use std::time::Instant;

use super::Proxy;
use crate::close::Reason;
use crate::forward::budget::{Budget, Charge, Spending};
use crate::forward::Forward;
use crate::front::Front;

impl Proxy {
    /// A forward client about to go out: count its request toward the
    /// budget that covers its destination. `Ok`: what its connection's
    /// bytes count toward (if any budget covers it); `Err`: refused (the
    /// front has answered and holds its reason).
    pub(super) fn charge_request(&mut self, front: &mut Front, now: Instant) -> Result<Option<(Charge, Budget)>, ()> {
        let Some(door) = self.doors.get(front.door) else { return Ok(None) };
        let (Some(policy), Some(target)) = (door.policy(front.policy), front.target.as_ref()) else { return Ok(None) };
        let forward = &policy.forward;
        let Some(index) = forward.budget_for(&target.host) else { return Ok(None) };
        let Some(budget) = forward.budgets.get(index).cloned() else { return Ok(None) };
        let charge = Charge { route: policy.label.clone(), budget: index, client: front.from.ip() };
        match self.spending.request(&charge, &budget, now) {
            Ok(()) => Ok(Some((charge, budget))),
            Err(why) => {
                let (host, port) = (target.host.clone(), target.port);
                front.over_budget(Forward::over_budget(&host, port, why));
                Err(())
            }
        }
    }
}

/// Connection `id` moved `bytes` (up, down): counted toward its budget;
/// `Err` with the reason to close it once it passes a byte limit. (The
/// fields alone, not the proxy: the loop holds the connection meanwhile.)
pub(super) fn charge_bytes(charging: &Charging, spending: &mut Spending, id: u64, bytes: (u64, u64), now: Instant) -> Result<(), Reason> {
    let Some((charge, budget)) = charging.get(&id) else { return Ok(()) };
    if bytes == (0, 0) {
        return Ok(());
    }
    spending.bytes(charge, budget, bytes, now).map_err(Reason::OverBudget)
}

/// What each budgeted connection counts toward, by connection id.
pub(super) type Charging = HashMap<u64, (Charge, Budget)>;
