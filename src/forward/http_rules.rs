//! Stand-in for the method and path rules being written beside this work
//! (same API); replaced at the merge.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRule {
    text: String,
}

pub fn parse(item: &str) -> Result<HttpRule, String> {
    Err(format!("allow-http={item}: not built yet"))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRules(Vec<HttpRule>);

impl HttpRules {
    pub fn push(&mut self, rule: HttpRule) {
        self.0.push(rule);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn names(&self, _host: &str) -> bool {
        false
    }
    pub fn check(&self, _host: &str, _method: &str, _target: &str) -> Result<(), String> {
        Ok(())
    }
}
