//! Device service responses (`tds:`), written in the element order the ONVIF schema fixes.

use time::OffsetDateTime;

use crate::events::EventLimits;
use crate::model::{DeviceModel, RequestCtx};
use crate::ns;
use crate::ops::Category;
use crate::xml::XmlWriter;

pub(crate) fn system_date_and_time(w: &mut XmlWriter, now_unix: i64) {
    let t = OffsetDateTime::from_unix_timestamp(now_unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    w.open("tds:GetSystemDateAndTimeResponse", &[]);
    w.open("tds:SystemDateAndTime", &[]);
    w.leaf("tt:DateTimeType", "NTP");
    w.boolean("tt:DaylightSavings", false);
    w.open("tt:TimeZone", &[]);
    w.leaf("tt:TZ", "UTC0");
    w.close("tt:TimeZone");
    // The device runs on UTC, so local time is UTC time.
    for which in ["tt:UTCDateTime", "tt:LocalDateTime"] {
        w.open(which, &[]);
        w.open("tt:Time", &[]);
        w.num("tt:Hour", t.hour());
        w.num("tt:Minute", t.minute());
        w.num("tt:Second", t.second());
        w.close("tt:Time");
        w.open("tt:Date", &[]);
        w.num("tt:Year", t.year());
        w.num("tt:Month", u8::from(t.month()));
        w.num("tt:Day", t.day());
        w.close("tt:Date");
        w.close(which);
    }
    w.close("tds:SystemDateAndTime");
    w.close("tds:GetSystemDateAndTimeResponse");
}

pub(crate) fn device_information(w: &mut XmlWriter, m: &DeviceModel) {
    let i = &m.info;
    w.open("tds:GetDeviceInformationResponse", &[]);
    w.leaf("tds:Manufacturer", &i.manufacturer);
    w.leaf("tds:Model", &i.model);
    w.leaf("tds:FirmwareVersion", &i.firmware_version);
    w.leaf("tds:SerialNumber", &i.serial_number);
    w.leaf("tds:HardwareId", &i.hardware_id);
    w.close("tds:GetDeviceInformationResponse");
}

pub(crate) fn capabilities(w: &mut XmlWriter, m: &DeviceModel, ctx: &RequestCtx, cat: Category) {
    w.open("tds:GetCapabilitiesResponse", &[]);
    w.open("tds:Capabilities", &[]);
    if matches!(cat, Category::All | Category::Device) {
        w.open("tt:Device", &[]);
        w.leaf("tt:XAddr", &m.device_xaddr(ctx));
        w.open("tt:Network", &[]);
        w.boolean("tt:IPFilter", false);
        w.boolean("tt:ZeroConfiguration", false);
        w.boolean("tt:IPVersion6", false);
        w.boolean("tt:DynDNS", false);
        w.close("tt:Network");
        w.open("tt:System", &[]);
        w.boolean("tt:DiscoveryResolve", false);
        w.boolean("tt:DiscoveryBye", true);
        w.boolean("tt:RemoteDiscovery", false);
        w.boolean("tt:SystemBackup", false);
        w.boolean("tt:SystemLogging", false);
        w.boolean("tt:FirmwareUpgrade", false);
        w.open("tt:SupportedVersions", &[]);
        w.num("tt:Major", 2);
        w.num("tt:Minor", 0);
        w.close("tt:SupportedVersions");
        w.close("tt:System");
        w.open("tt:Security", &[]);
        for name in [
            "tt:TLS1.1",
            "tt:TLS1.2",
            "tt:OnboardKeyGeneration",
            "tt:AccessPolicyConfig",
            "tt:X.509Token",
            "tt:SAMLToken",
            "tt:KerberosToken",
            "tt:RELToken",
        ] {
            w.boolean(name, false);
        }
        w.close("tt:Security");
        w.close("tt:Device");
    }
    if matches!(cat, Category::All | Category::Events) {
        w.open("tt:Events", &[]);
        w.leaf("tt:XAddr", &event_xaddr(m, ctx));
        w.boolean("tt:WSSubscriptionPolicySupport", false);
        w.boolean("tt:WSPullPointSupport", true);
        w.boolean("tt:WSPausableSubscriptionManagerInterfaceSupport", false);
        w.close("tt:Events");
    }
    if matches!(cat, Category::All | Category::Media) {
        w.open("tt:Media", &[]);
        w.leaf("tt:XAddr", &m.media_xaddr(ctx));
        w.open("tt:StreamingCapabilities", &[]);
        w.boolean("tt:RTPMulticast", false);
        w.boolean("tt:RTP_TCP", true);
        w.boolean("tt:RTP_RTSP_TCP", true);
        w.close("tt:StreamingCapabilities");
        w.close("tt:Media");
    }
    w.close("tds:Capabilities");
    w.close("tds:GetCapabilitiesResponse");
}

fn device_service_capabilities_body(w: &mut XmlWriter, element: &str) {
    w.open(element, &[]);
    w.empty(
        "tds:Network",
        &[
            ("IPFilter", "false"),
            ("ZeroConfiguration", "false"),
            ("IPVersion6", "false"),
            ("DynDNS", "false"),
            ("HostnameFromDHCP", "false"),
            ("NTP", "0"),
        ],
    );
    w.empty(
        "tds:Security",
        &[
            ("TLS1.0", "false"),
            ("TLS1.1", "false"),
            ("TLS1.2", "false"),
            ("UsernameToken", "true"),
            ("HttpDigest", "false"),
        ],
    );
    w.empty(
        "tds:System",
        &[
            ("DiscoveryResolve", "false"),
            ("DiscoveryBye", "true"),
            ("RemoteDiscovery", "false"),
            ("SystemBackup", "false"),
            ("SystemLogging", "false"),
            ("FirmwareUpgrade", "false"),
        ],
    );
    w.close(element);
}

pub(crate) fn device_service_capabilities(w: &mut XmlWriter) {
    w.open("tds:GetServiceCapabilitiesResponse", &[]);
    device_service_capabilities_body(w, "tds:Capabilities");
    w.close("tds:GetServiceCapabilitiesResponse");
}

/// The event service's address as the client reached us.
pub(crate) fn event_xaddr(m: &DeviceModel, ctx: &RequestCtx) -> String {
    format!("{}/onvif/event_service", m.http_base(ctx))
}

pub(crate) fn services(
    w: &mut XmlWriter,
    m: &DeviceModel,
    ctx: &RequestCtx,
    with_caps: bool,
    events: &EventLimits,
) {
    w.open("tds:GetServicesResponse", &[]);
    // Device service.
    w.open("tds:Service", &[]);
    w.leaf("tds:Namespace", ns::DEVICE);
    w.leaf("tds:XAddr", &m.device_xaddr(ctx));
    if with_caps {
        w.open("tds:Capabilities", &[]);
        device_service_capabilities_body(w, "tds:Capabilities");
        w.close("tds:Capabilities");
    }
    version(w, "tds:Version", 2, 0);
    w.close("tds:Service");
    // Media service.
    w.open("tds:Service", &[]);
    w.leaf("tds:Namespace", ns::MEDIA);
    w.leaf("tds:XAddr", &m.media_xaddr(ctx));
    if with_caps {
        w.open("tds:Capabilities", &[]);
        crate::media::service_capabilities_body(w, m, "trt:Capabilities");
        w.close("tds:Capabilities");
    }
    version(w, "tds:Version", 2, 0);
    w.close("tds:Service");
    // Event service.
    w.open("tds:Service", &[]);
    w.leaf("tds:Namespace", ns::EVENTS);
    w.leaf("tds:XAddr", &event_xaddr(m, ctx));
    if with_caps {
        w.open("tds:Capabilities", &[]);
        crate::events::capabilities_body(w, "tev:Capabilities", events);
        w.close("tds:Capabilities");
    }
    version(w, "tds:Version", 2, 0);
    w.close("tds:Service");
    w.close("tds:GetServicesResponse");
}

fn version(w: &mut XmlWriter, element: &str, major: u32, minor: u32) {
    w.open(element, &[]);
    w.num("tt:Major", major);
    w.num("tt:Minor", minor);
    w.close(element);
}

pub(crate) fn scopes(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("tds:GetScopesResponse", &[]);
    for s in &m.scopes {
        w.open("tds:Scopes", &[]);
        w.leaf("tt:ScopeDef", "Fixed");
        w.leaf("tt:ScopeItem", s);
        w.close("tds:Scopes");
    }
    w.close("tds:GetScopesResponse");
}

pub(crate) fn network_interfaces(w: &mut XmlWriter, m: &DeviceModel) {
    let n = &m.network;
    w.open("tds:GetNetworkInterfacesResponse", &[]);
    w.open("tds:NetworkInterfaces", &[("token", "eth0")]);
    w.boolean("tt:Enabled", true);
    w.open("tt:Info", &[]);
    w.leaf("tt:Name", &n.interface_name);
    w.leaf("tt:HwAddress", &n.mac);
    w.num("tt:MTU", n.mtu);
    w.close("tt:Info");
    w.open("tt:IPv4", &[]);
    w.boolean("tt:Enabled", n.ipv4.is_some());
    w.open("tt:Config", &[]);
    if let Some((addr, prefix)) = n.ipv4 {
        w.open("tt:Manual", &[]);
        w.leaf("tt:Address", &addr.to_string());
        w.num("tt:PrefixLength", prefix);
        w.close("tt:Manual");
    }
    w.boolean("tt:DHCP", false);
    w.close("tt:Config");
    w.close("tt:IPv4");
    w.close("tds:NetworkInterfaces");
    w.close("tds:GetNetworkInterfacesResponse");
}

pub(crate) fn hostname(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("tds:GetHostnameResponse", &[]);
    w.open("tds:HostnameInformation", &[]);
    w.boolean("tt:FromDHCP", false);
    w.leaf("tt:Name", &m.network.hostname);
    w.close("tds:HostnameInformation");
    w.close("tds:GetHostnameResponse");
}

pub(crate) fn network_protocols(w: &mut XmlWriter, m: &DeviceModel) {
    w.open("tds:GetNetworkProtocolsResponse", &[]);
    for (name, port) in [("HTTP", m.http_port), ("RTSP", m.rtsp_port)] {
        w.open("tds:NetworkProtocols", &[]);
        w.leaf("tt:Name", name);
        w.boolean("tt:Enabled", true);
        w.num("tt:Port", port);
        w.close("tds:NetworkProtocols");
    }
    w.close("tds:GetNetworkProtocolsResponse");
}

pub(crate) fn system_reboot(w: &mut XmlWriter) {
    w.open("tds:SystemRebootResponse", &[]);
    w.leaf("tds:Message", "Restarting the appliance");
    w.close("tds:SystemRebootResponse");
}

pub(crate) fn discovery_mode(w: &mut XmlWriter) {
    w.open("tds:GetDiscoveryModeResponse", &[]);
    w.leaf("tds:DiscoveryMode", "Discoverable");
    w.close("tds:GetDiscoveryModeResponse");
}
