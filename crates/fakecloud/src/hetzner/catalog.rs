//! The fixed catalog servers are made from: server types, locations and system images, with
//! their JSON as `GET /server_types`, `GET /locations` and `GET /images` render them.

use serde_json::{Value, json};

/// A server type.
pub(crate) struct ServerType {
    pub id: u64,
    pub name: &'static str,
    pub cores: u32,
    pub memory: f64,
    pub disk: u32,
    pub cpu_type: &'static str,
    pub architecture: &'static str,
    pub category: &'static str,
    /// Net prices per hour and per month, as the API writes them.
    pub prices: (&'static str, &'static str),
}

#[allow(clippy::too_many_arguments)]
const fn st(
    id: u64,
    name: &'static str,
    cores: u32,
    memory: f64,
    disk: u32,
    cpu_type: &'static str,
    architecture: &'static str,
    category: &'static str,
    hourly: &'static str,
    monthly: &'static str,
) -> ServerType {
    ServerType {
        id,
        name,
        cores,
        memory,
        disk,
        cpu_type,
        architecture,
        category,
        prices: (hourly, monthly),
    }
}

const CO: &str = "cost_optimized";
const RP: &str = "regular_purpose";

/// The server types, the first being the fallback of seeded servers.
#[rustfmt::skip]
pub(crate) const SERVER_TYPES: &[ServerType] = &[
    st(22, "cx22", 2, 4.0, 40, "shared", "x86", CO, "0.0060000000", "3.7900000000"),
    st(23, "cx23", 2, 4.0, 40, "shared", "x86", CO, "0.0060000000", "3.4900000000"),
    st(32, "cx32", 4, 8.0, 80, "shared", "x86", CO, "0.0110000000", "6.8000000000"),
    st(33, "cx33", 4, 8.0, 80, "shared", "x86", CO, "0.0090000000", "5.4900000000"),
    st(42, "cx42", 8, 16.0, 160, "shared", "x86", CO, "0.0270000000", "16.4000000000"),
    st(52, "cx52", 16, 32.0, 320, "shared", "x86", CO, "0.0540000000", "32.4000000000"),
    st(11, "cpx11", 2, 2.0, 40, "shared", "x86", RP, "0.0080000000", "4.5100000000"),
    st(21, "cpx21", 3, 4.0, 80, "shared", "x86", RP, "0.0140000000", "8.4900000000"),
    st(24, "cpx22", 2, 4.0, 80, "shared", "x86", RP, "0.0120000000", "7.4900000000"),
    st(31, "cpx31", 4, 8.0, 160, "shared", "x86", RP, "0.0250000000", "15.5900000000"),
    st(45, "cax11", 2, 4.0, 40, "shared", "arm", CO, "0.0060000000", "3.7900000000"),
    st(93, "cax21", 4, 8.0, 80, "shared", "arm", CO, "0.0110000000", "6.4900000000"),
    st(96, "ccx13", 2, 8.0, 80, "dedicated", "x86", "general_purpose", "0.0240000000", "14.8600000000"),
];

/// A location and its one datacenter: (id, name, description, country, city, latitude,
/// longitude, network zone, datacenter, datacenter description).
pub(crate) type Location = (
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    &'static str,
    &'static str,
    &'static str,
);

/// The locations, the first being the default.
#[rustfmt::skip]
pub(crate) const LOCATIONS: &[Location] = &[
    (1, "fsn1", "Falkenstein DC Park 1", "DE", "Falkenstein", 50.47612, 12.370071, "eu-central", "fsn1-dc14", "Falkenstein 1 virtual DC 14"),
    (2, "nbg1", "Nuremberg DC Park 1", "DE", "Nuremberg", 49.452102, 11.076665, "eu-central", "nbg1-dc3", "Nuremberg 1 virtual DC 3"),
    (3, "hel1", "Helsinki DC Park 1", "FI", "Helsinki", 60.169855, 24.938379, "eu-central", "hel1-dc2", "Helsinki 1 virtual DC 2"),
    (4, "ash", "Ashburn, VA", "US", "Ashburn, VA", 39.045821, -77.487073, "us-east", "ash-dc1", "Ashburn virtual DC 1"),
    (5, "hil", "Hillsboro, OR", "US", "Hillsboro, OR", 45.54222, -122.951924, "us-west", "hil-dc1", "Hillsboro virtual DC 1"),
    (6, "sin", "Singapore", "SG", "Singapore", 1.283333, 103.833333, "ap-southeast", "sin-dc1", "Singapore virtual DC 1"),
];

/// The system images: (id, name, os_flavor, os_version, description).
pub(crate) const SYSTEM_IMAGES: &[(u64, &str, &str, &str, &str)] = &[
    (1, "ubuntu-22.04", "ubuntu", "22.04", "Ubuntu 22.04"),
    (2, "ubuntu-24.04", "ubuntu", "24.04", "Ubuntu 24.04"),
    (3, "debian-12", "debian", "12", "Debian 12"),
    (4, "debian-13", "debian", "13", "Debian 13"),
    (5, "rocky-9", "rocky", "9", "Rocky Linux 9"),
    (6, "alma-9", "alma", "9", "AlmaLinux 9"),
    (7, "fedora-42", "fedora", "42", "Fedora 42"),
];

/// Traffic included with every server type, in bytes (20 TiB).
pub(crate) const INCLUDED_TRAFFIC: u64 = 21_990_232_555_520;

/// A location as `GET /locations` renders it.
pub(crate) fn location_json(l: &Location) -> Value {
    let (id, name, description, country, city, latitude, longitude, network_zone, _, _) = *l;
    json!({
        "id": id, "name": name, "description": description, "country": country, "city": city,
        "latitude": latitude, "longitude": longitude, "network_zone": network_zone,
    })
}

/// A location's datacenter as a server renders it.
pub(crate) fn datacenter_json(l: &Location) -> Value {
    let ids: Vec<u64> = SERVER_TYPES.iter().map(|t| t.id).collect();
    json!({
        "id": l.0, "name": l.8, "description": l.9, "location": location_json(l),
        "server_types": {"supported": ids, "available": ids, "available_for_migration": ids},
    })
}

/// A server type as `GET /server_types` renders it.
pub(crate) fn server_type_json(t: &ServerType) -> Value {
    let price = |v: &str| {
        let net: f64 = v.parse().unwrap_or(0.0);
        json!({"net": v, "gross": format!("{:.16}", net * 1.19)})
    };
    json!({
        "id": t.id, "name": t.name, "description": t.name.to_uppercase(), "cores": t.cores,
        "memory": t.memory, "disk": t.disk, "deprecated": false,
        "prices": LOCATIONS.iter().map(|l| json!({
            "location": l.1, "price_hourly": price(t.prices.0), "price_monthly": price(t.prices.1),
            "included_traffic": INCLUDED_TRAFFIC, "price_per_tb_traffic": price("1.0000000000"),
        })).collect::<Vec<_>>(),
        "storage_type": "local", "cpu_type": t.cpu_type, "category": t.category,
        "architecture": t.architecture, "deprecation": Value::Null,
        "locations": LOCATIONS.iter().map(|l| json!({
            "id": l.0, "name": l.1, "deprecation": Value::Null, "available": true, "recommended": l.0 == 1,
        })).collect::<Vec<_>>(),
    })
}
