//! Generated gRPC and event types for every regiozorg API (`regiozorg.<service>.v1`).

#![allow(clippy::all, clippy::pedantic)]

pub mod types {
    pub mod v1 {
        tonic::include_proto!("regiozorg.types.v1");
    }
}

pub mod registration {
    pub mod v1 {
        tonic::include_proto!("regiozorg.registration.v1");
    }
}

pub mod access {
    pub mod v1 {
        tonic::include_proto!("regiozorg.access.v1");
    }
}

pub mod assignment {
    pub mod v1 {
        tonic::include_proto!("regiozorg.assignment.v1");
    }
}

pub mod reporting {
    pub mod v1 {
        tonic::include_proto!("regiozorg.reporting.v1");
    }
}

pub mod notification {
    pub mod v1 {
        tonic::include_proto!("regiozorg.notification.v1");
    }
}

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("regiozorg.audit.v1");
    }
}

/// The encoded `FileDescriptorSet` of every regiozorg API: authorisation reads the request fields
/// its policy binds by name, and tests enumerate every RPC from it.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/regiozorg_descriptor.bin"));

/// The kinds of events on the bus, named once for producers and consumers: a consumer that compares
/// against a constant here cannot silently miss events through a typo.
///
/// Each [`EventType`] has its bounded context (the stream and the second subject token), its short
/// name (the last subject token: `<ns>.<context>.<municipality|_>.<AGB|_>.<name>`) and its
/// CloudEvents type (`nl.regiozorg.<context>.<name>.v1`, the `ce-type` header).
pub mod events {
    /// One kind of event (see the module doc).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EventType {
        pub context: &'static str,
        pub name: &'static str,
        pub ce_type: &'static str,
    }

    impl EventType {
        /// Whether `ce_type` (an event's `ce-type`) is this kind.
        pub fn is(&self, ce_type: &str) -> bool {
            self.ce_type == ce_type
        }
    }

    impl std::fmt::Display for EventType {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.ce_type)
        }
    }

    macro_rules! event_types {
        ($context:literal: $($(#[$doc:meta])* $constant:ident = $name:literal;)*) => {
            /// The bounded context, the stream these events are published to.
            pub const CONTEXT: &str = $context;
            $(
                $(#[$doc])*
                pub const $constant: super::EventType = super::EventType {
                    context: $context,
                    name: $name,
                    ce_type: concat!("nl.regiozorg.", $context, ".", $name, ".v1"),
                };
            )*
            /// Every kind of event of this context.
            pub const ALL: &[super::EventType] = &[$($constant),*];
        };
    }

    /// Events of the regional contract register.
    pub mod registration {
        event_types! { "registration":
            /// A provider, consortium or subcontractor was registered (`ProviderChanged`).
            PROVIDER_REGISTERED = "provider_registered";
            /// A provider's details or relations changed (`ProviderChanged`).
            PROVIDER_CHANGED = "provider_changed";
            /// A tender was opened or moved on (`TenderChanged`).
            TENDER_CHANGED = "tender_changed";
            /// A contract was concluded (`ContractConcluded`).
            CONTRACT_CONCLUDED = "contract_concluded";
            /// A contract was extended, terminated or got a budget or tariff (`ContractChanged`).
            CONTRACT_CHANGED = "contract_changed";
        }
    }

    /// Events of a municipality's access service (client key only, never the BSN).
    pub mod access {
        event_types! { "access":
            /// A case was opened or moved on (`CaseChanged`).
            CASE_CHANGED = "case_changed";
            /// A decision (beschikking) granted products (`DecisionGranted`).
            DECISION_GRANTED = "decision_granted";
            /// A granted product was changed, extended or ended (`ProductAmended`).
            PRODUCT_AMENDED = "product_amended";
        }
    }

    /// Events of assignment: `ISSUED`, `CHANGED` and `REQUEST_ANSWERED` are addressed to one
    /// provider (its AGB code in the subject) and carry the standard's content with the BSN;
    /// `LIFECYCLE` carries only the client key.
    pub mod assignment {
        event_types! { "assignment":
            /// An assignment (toewijzing) to a provider (`AssignmentMessage`, the 301's content).
            ISSUED = "issued";
            /// A changed assignment (`AssignmentMessage`).
            CHANGED = "changed";
            /// The municipality's answer to a provider's request (`RequestAnswered`).
            REQUEST_ANSWERED = "request_answered";
            /// Every change of an assignment, pseudonymous (`AssignmentLifecycle`).
            LIFECYCLE = "lifecycle";
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn types_follow_the_convention_and_are_unique() {
            assert_eq!(
                super::assignment::ISSUED.ce_type,
                "nl.regiozorg.assignment.issued.v1"
            );
            assert!(super::access::DECISION_GRANTED.is("nl.regiozorg.access.decision_granted.v1"));
            let all: Vec<_> = [
                super::registration::ALL,
                super::access::ALL,
                super::assignment::ALL,
            ]
            .concat();
            let mut types: Vec<_> = all.iter().map(|t| t.ce_type).collect();
            types.sort_unstable();
            types.dedup();
            assert_eq!(types.len(), all.len());
            for t in all {
                assert_eq!(
                    t.ce_type,
                    format!("nl.regiozorg.{}.{}.v1", t.context, t.name)
                );
            }
        }
    }
}
