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
