//! Kafka's configs, as data: every topic config and the broker configs Spate knows, with their
//! types, defaults and validators, checked with Kafka's own messages ("Invalid value V for
//! configuration N: ..."). `topic` holds the topic configs and the broker settings they fall
//! back to; `broker` the broker configs, which of them may change at run time (dynamic, as
//! Kafka's `DynamicBrokerConfig`) and the value each has from its sources.

pub mod broker;
pub mod topic;

/// Kafka's config types, with the codes DescribeConfigs v3+ reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// A value's check beyond its type (Kafka's `ConfigDef` validators).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// A DOUBLE between 0 and 1.
    Ratio,
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these; the empty list is allowed (KIP-1161).
    ListOf(&'static [&'static str]),
    /// `compression.gzip.level`: 1 to 9, or -1.
    GzipLevel,
    /// `[partition]:[broker],...` or `*` (the replication throttle lists).
    ThrottledReplicas,
}

/// One config: its name, type, Kafka's default (`None`: null), and its check.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: Option<&'static str>,
    pub check: Check,
}

/// The longest value Kafka stores (a KRaft config record's limit).
pub const VALUE_BYTES_MAX: usize = 32_767;

pub const LONG_MAX: &str = "9223372036854775807";
pub const INT_MAX: &str = "2147483647";

impl ConfigDef {
    pub const fn new(
        name: &'static str,
        kind: ConfigType,
        default: Option<&'static str>,
        check: Check,
    ) -> ConfigDef {
        ConfigDef {
            name,
            kind,
            default,
            check,
        }
    }

    /// Whether `value` is valid for this config; the error is Kafka's message.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        check_storable(self.name, value)?;
        let trimmed = value.trim();
        let integer = |bits: u32| -> Result<i64, String> {
            let parsed: Option<i64> = trimmed.parse().ok();
            let max = (1i64 << (bits - 1)) - 1;
            parsed
                .filter(|v| bits == 64 || (-max - 1..=max).contains(v))
                .ok_or_else(|| {
                    invalid(
                        value,
                        self.name,
                        &format!("Not a number of type {}", self.kind.name()),
                    )
                })
        };
        match self.kind {
            ConfigType::Boolean => {
                if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                    return Err(invalid(
                        value,
                        self.name,
                        "Expected value to be either true or false",
                    ));
                }
                Ok(())
            }
            ConfigType::Int => self.check_number(integer(32)?),
            ConfigType::Short => self.check_number(integer(16)?),
            ConfigType::Long => self.check_number(integer(64)?),
            ConfigType::Double => {
                let parsed: f64 = trimmed
                    .parse()
                    .ok()
                    .filter(|v: &f64| !v.is_nan())
                    .ok_or_else(|| invalid(value, self.name, "Not a number of type DOUBLE"))?;
                match self.check {
                    Check::Ratio if parsed < 0.0 => Err(invalid(
                        &format!("{parsed:?}"),
                        self.name,
                        "Value must be at least 0",
                    )),
                    Check::Ratio if parsed > 1.0 => Err(invalid(
                        &format!("{parsed:?}"),
                        self.name,
                        "Value must be no more than 1",
                    )),
                    _ => Ok(()),
                }
            }
            ConfigType::List => self.check_list(trimmed),
            ConfigType::String | ConfigType::Class | ConfigType::Password => match self.check {
                Check::OneOf(allowed) if !allowed.contains(&trimmed) => Err(invalid(
                    value,
                    self.name,
                    &format!("String must be one of: {}", allowed.join(", ")),
                )),
                _ => Ok(()),
            },
        }
    }

    fn check_number(&self, parsed: i64) -> Result<(), String> {
        let (min, max) = match self.check {
            Check::AtLeast(min) => (min, i64::MAX),
            Check::Between(min, max) => (min, max),
            Check::GzipLevel if parsed == -1 || (1..=9).contains(&parsed) => return Ok(()),
            Check::GzipLevel => {
                return Err(invalid(
                    &parsed.to_string(),
                    self.name,
                    "Value must be between 1 and 9 or equal to -1",
                ))
            }
            _ => return Ok(()),
        };
        if parsed < min {
            return Err(invalid(
                &parsed.to_string(),
                self.name,
                &format!("Value must be at least {min}"),
            ));
        }
        if parsed > max {
            return Err(invalid(
                &parsed.to_string(),
                self.name,
                &format!("Value must be no more than {max}"),
            ));
        }
        Ok(())
    }

    fn check_list(&self, trimmed: &str) -> Result<(), String> {
        let items = list_items(trimmed);
        match self.check {
            Check::ListOf(allowed) => {
                for item in &items {
                    if !allowed.contains(item) {
                        return Err(invalid(
                            item,
                            self.name,
                            &format!("String must be one of: {}", allowed.join(", ")),
                        ));
                    }
                }
                Ok(())
            }
            Check::ThrottledReplicas => {
                let pair = |s: &str| {
                    s.is_empty()
                        || s.split_once(':').is_some_and(|(p, b)| {
                            !p.is_empty()
                                && !b.is_empty()
                                && p.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                        })
                };
                if items.iter().all(|s| pair(s)) || items == ["*"] {
                    return Ok(());
                }
                Err(invalid(
                    &format!("[{}]", items.join(", ")),
                    self.name,
                    &format!(
                        "{} must be the literal '*' or a list of replicas in the following \
                         format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                        self.name
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a value of any config can be kept: the metadata file is tab- and line-separated,
/// and Kafka stores at most [`VALUE_BYTES_MAX`] bytes.
pub fn check_storable(name: &str, value: &str) -> Result<(), String> {
    if value.contains(['\t', '\n', '\r']) {
        return Err(invalid(value, name, "Tabs and line breaks are not allowed"));
    }
    if value.len() > VALUE_BYTES_MAX {
        return Err(format!(
            "The configuration value cannot be added because it exceeds the maximum value \
             size of {VALUE_BYTES_MAX} bytes."
        ));
    }
    Ok(())
}

/// Kafka's `ConfigException` message.
fn invalid(value: &str, name: &str, why: &str) -> String {
    format!("Invalid value {value} for configuration {name}: {why}")
}

/// The elements of a LIST value, as Kafka splits it: on commas with the spaces around them; the
/// empty string is the empty list.
pub fn list_items(value: &str) -> Vec<&str> {
    let value = value.trim();
    if value.is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// A config's value as an integer, where its type is one (`None` for a null default).
pub fn as_i64(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: ConfigType, check: Check) -> ConfigDef {
        ConfigDef::new("x.y", kind, None, check)
    }

    /// Kafka's own messages, from `ConfigDef` and `ConfigException`.
    #[test]
    fn values_are_checked_with_kafkas_messages() {
        let cases: &[(ConfigDef, &str, Result<(), &str>)] = &[
            (def(ConfigType::Long, Check::AtLeast(-1)), "-1", Ok(())),
            (
                def(ConfigType::Long, Check::AtLeast(-1)),
                "-5",
                Err("Invalid value -5 for configuration x.y: Value must be at least -1"),
            ),
            (
                def(ConfigType::Int, Check::Any),
                "2147483648",
                Err("Invalid value 2147483648 for configuration x.y: Not a number of type INT"),
            ),
            (
                def(ConfigType::Long, Check::Any),
                "ten",
                Err("Invalid value ten for configuration x.y: Not a number of type LONG"),
            ),
            (def(ConfigType::Boolean, Check::Any), " TRUE ", Ok(())),
            (
                def(ConfigType::Boolean, Check::Any),
                "yes",
                Err("Invalid value yes for configuration x.y: Expected value to be either true or false"),
            ),
            (def(ConfigType::Double, Check::Ratio), "0.25", Ok(())),
            (
                def(ConfigType::Double, Check::Ratio),
                "2",
                Err("Invalid value 2.0 for configuration x.y: Value must be no more than 1"),
            ),
            (
                def(ConfigType::String, Check::OneOf(&["a", "b"])),
                "c",
                Err("Invalid value c for configuration x.y: String must be one of: a, b"),
            ),
            (def(ConfigType::List, Check::ListOf(&["compact", "delete"])), "", Ok(())),
            (
                def(ConfigType::List, Check::ListOf(&["compact", "delete"])),
                "compact, delete",
                Ok(()),
            ),
            (
                def(ConfigType::List, Check::ListOf(&["compact", "delete"])),
                "delete,foo",
                Err("Invalid value foo for configuration x.y: String must be one of: compact, delete"),
            ),
            (def(ConfigType::Int, Check::GzipLevel), "-1", Ok(())),
            (
                def(ConfigType::Int, Check::GzipLevel),
                "0",
                Err("Invalid value 0 for configuration x.y: Value must be between 1 and 9 or equal to -1"),
            ),
            (def(ConfigType::List, Check::ThrottledReplicas), "0:1,1:2", Ok(())),
            (def(ConfigType::List, Check::ThrottledReplicas), "*", Ok(())),
            (
                def(ConfigType::List, Check::ThrottledReplicas),
                "0:1,x",
                Err("Invalid value [0:1, x] for configuration x.y: x.y must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
            ),
            (
                def(ConfigType::Short, Check::Between(1, 10)),
                "11",
                Err("Invalid value 11 for configuration x.y: Value must be no more than 10"),
            ),
        ];
        for (def, value, expected) in cases {
            assert_eq!(
                def.validate(value),
                expected.map_err(str::to_string),
                "{value:?}"
            );
        }
        assert!(def(ConfigType::String, Check::Any)
            .validate("a\tb")
            .is_err());
    }
}
