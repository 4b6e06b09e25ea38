"""Strict JSON Schemas of the custom resources NeuroDock renders, for offline validation (KEDA's
ScaledObject follows its specification page).

kubernetes-validate carries only built-in kinds. These schemas follow prometheus-operator's CRDs
(``example/prometheus-operator-crd/monitoring.coreos.com_{prometheusrules,servicemonitors}.yaml``,
operator 0.82): the PrometheusRule spec as a whole, and for ServiceMonitor the fields NeuroDock
may set. Unlike the CRDs they forbid unknown fields, so a misspelt field fails here too.
"""

from __future__ import annotations

DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                         r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}

LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}

RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "for": DURATION,
        "keep_firing_for": {**DURATION, "minLength": 1},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}

PROMETHEUS_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"groups": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": DURATION,
                    "query_offset": DURATION,
                    "limit": {"type": "integer"},
                    "labels": STRING_MAP,
                    "partial_response_strategy": {"type": "string"},
                    "rules": {"type": "array", "items": RULE},
                },
            }}},
        },
    },
}

SERVICE_MONITOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "endpoints": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                        "honorLabels": {"type": "boolean"},
                        "honorTimestamps": {"type": "boolean"},
                    },
                }},
            },
        },
    },
}

HPA_POLICY = {"type": "object", "additionalProperties": False, "required": ["type", "value", "periodSeconds"],
              "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": {"type": "integer", "minimum": 1},
                             "periodSeconds": {"type": "integer", "minimum": 1}}}
HPA_RULES = {"type": "object", "additionalProperties": False, "properties": {
    "stabilizationWindowSeconds": {"type": "integer", "minimum": 0},
    "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
    "policies": {"type": "array", "items": HPA_POLICY},
}}

SCALED_OBJECT = {
    # keda.sh/v1alpha1 ScaledObject, following KEDA's ScaledObject specification (docs 2.17/2.18).
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "additionalProperties": False, "required": ["name"],
                                   "properties": {"name": {"type": "string"}, "apiVersion": {"type": "string"},
                                                  "kind": {"type": "string"},
                                                  "envSourceContainerName": {"type": "string"}}},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {"type": "object", "additionalProperties": False,
                             "required": ["failureThreshold", "replicas"],
                             "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"},
                                            "behavior": {"type": "string"}}},
                "advanced": {"type": "object", "additionalProperties": False, "properties": {
                    "restoreToOriginalReplicaCount": {"type": "boolean"},
                    "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False,
                                                      "properties": {
                        "name": {"type": "string"},
                        "behavior": {"type": "object", "additionalProperties": False,
                                     "properties": {"scaleUp": HPA_RULES, "scaleDown": HPA_RULES}},
                    }},
                }},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["type", "metadata"],
                    "properties": {
                        "type": {"type": "string"},
                        "name": {"type": "string"},
                        "useCachedMetrics": {"type": "boolean"},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "metadata": STRING_MAP,
                        "authenticationRef": {"type": "object"},
                    },
                }},
            },
        },
    },
}

# -- Gateway API (gateway.networking.k8s.io/v1, standard channel v1.3/v1.4) -------------------------
# Following sigs.k8s.io/gateway-api apis/v1 (gateway_types.go, gatewayclass_types.go,
# httproute_types.go, shared_types.go): the fields NeuroDock may set, with the CRDs' enums and bounds.


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


def _resource(api_version: str, kind: str, spec: dict) -> dict:
    return _obj({"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
                ("apiVersion", "kind", "metadata", "spec"))


OBJECT_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
GW_DURATION = {"type": "string", "pattern": r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
PARENT_REF = _obj({"group": {"type": "string"}, "kind": {"type": "string"}, "namespace": {"type": "string"},
                   "name": OBJECT_NAME, "sectionName": {"type": "string"}, "port": PORT}, ("name",))
BACKEND_OBJECT_REF = _obj({"group": {"type": "string"}, "kind": {"type": "string"}, "name": OBJECT_NAME,
                           "namespace": {"type": "string"}, "port": PORT}, ("name",))
HTTP_BACKEND_REF = _obj({**BACKEND_OBJECT_REF["properties"],
                         "weight": {"type": "integer", "minimum": 0, "maximum": 1000000}}, ("name",))
HEADER_MATCH = _obj({"type": {"enum": ["Exact", "RegularExpression"]}, "name": {"type": "string", "minLength": 1},
                     "value": {"type": "string", "minLength": 1, "maxLength": 4096}}, ("name", "value"))
ROUTE_MATCH = _obj({
    "path": _obj({"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                  "value": {"type": "string", "pattern": "^/", "maxLength": 1024}}),
    "headers": {"type": "array", "maxItems": 16, "items": HEADER_MATCH},
    "method": {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]},
})
ROUTE_FILTER = {
    "type": "object", "additionalProperties": False, "required": ["type"],
    "properties": {
        "type": {"enum": ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                          "URLRewrite", "ExtensionRef"]},
        "requestMirror": _obj({"backendRef": BACKEND_OBJECT_REF, "percent": {"type": "integer", "minimum": 0,
                                                                             "maximum": 100}}, ("backendRef",)),
        "extensionRef": _obj({"group": {"type": "string"}, "kind": {"type": "string", "minLength": 1},
                              "name": OBJECT_NAME}, ("group", "kind", "name")),
    },
    # Exactly the field its type names.
    "allOf": [
        {"if": {"properties": {"type": {"const": "RequestMirror"}}}, "then": {"required": ["requestMirror"]}},
        {"if": {"properties": {"type": {"const": "ExtensionRef"}}}, "then": {"required": ["extensionRef"]}},
    ],
}
HTTP_ROUTE = _resource("gateway.networking.k8s.io/v1", "HTTPRoute", _obj({
    "parentRefs": {"type": "array", "maxItems": 32, "items": PARENT_REF},
    "hostnames": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
    "rules": {"type": "array", "minItems": 1, "maxItems": 16, "items": _obj({
        "name": {"type": "string"},
        "matches": {"type": "array", "maxItems": 64, "items": ROUTE_MATCH},
        "filters": {"type": "array", "maxItems": 16, "items": ROUTE_FILTER},
        "backendRefs": {"type": "array", "maxItems": 16, "items": HTTP_BACKEND_REF},
        "timeouts": _obj({"request": GW_DURATION, "backendRequest": GW_DURATION}),
    })},
}))
GATEWAY_CLASS = _resource("gateway.networking.k8s.io/v1", "GatewayClass", _obj({
    "controllerName": {"type": "string", "pattern": r"^[a-z0-9.-]+/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$"},
    "parametersRef": _obj({"group": {"type": "string"}, "kind": {"type": "string"}, "name": OBJECT_NAME,
                           "namespace": {"type": "string"}}, ("group", "kind", "name")),
    "description": {"type": "string", "maxLength": 64},
}, ("controllerName",)))
GATEWAY = _resource("gateway.networking.k8s.io/v1", "Gateway", _obj({
    "gatewayClassName": OBJECT_NAME,
    "listeners": {"type": "array", "minItems": 1, "maxItems": 64, "items": _obj({
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "hostname": {"type": "string"},
        "port": PORT,
        "protocol": {"type": "string", "minLength": 1},
        "tls": _obj({"mode": {"enum": ["Terminate", "Passthrough"]},
                     "certificateRefs": {"type": "array", "maxItems": 64, "items": _obj({
                         "group": {"type": "string"}, "kind": {"type": "string"}, "name": OBJECT_NAME,
                         "namespace": {"type": "string"}}, ("name",))}}),
        "allowedRoutes": _obj({"namespaces": _obj({"from": {"enum": ["All", "Selector", "Same"]},
                                                   "selector": LABEL_SELECTOR})}),
    }, ("name", "port", "protocol"))},
}, ("gatewayClassName", "listeners")))

# -- Envoy Gateway (gateway.envoyproxy.io/v1alpha1, v1.7) -----------------------------------------
# Following envoyproxy/gateway api/v1alpha1 (envoyproxy_types.go, shared_types.go,
# clienttrafficpolicy_types.go, envoyextensionypolicy_types.go, ext_proc_types.go,
# securitypolicy_types.go, api_key_auth_types.go, httproutefilter_types.go).

TARGET_REFS = {"type": "array", "minItems": 1, "items": _obj(
    {"group": {"const": "gateway.networking.k8s.io"}, "kind": {"enum": ["Gateway", "HTTPRoute"]},
     "name": OBJECT_NAME, "sectionName": {"type": "string"}}, ("group", "kind", "name"))}
QUANTITY = {"type": "string", "pattern": r"^[1-9]+[0-9]*([EPTGMK]i|[EPTGMk])?$"}
ENVOY_PROXY = _resource("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy", _obj({"provider": _obj({
    "type": {"const": "Kubernetes"},
    "kubernetes": _obj({
        "envoyService": _obj({
            "name": {"type": "string"}, "type": {"enum": ["ClusterIP", "LoadBalancer", "NodePort"]},
            "annotations": STRING_MAP, "loadBalancerSourceRanges": {"type": "array", "items": {"type": "string"}},
            "externalTrafficPolicy": {"enum": ["Local", "Cluster"]}}),
        "envoyDeployment": _obj({
            "replicas": {"type": "integer", "minimum": 0},
            # Pod and container specs are core types (PodSecurityContext, SecurityContext).
            "pod": _obj({"nodeSelector": STRING_MAP, "securityContext": {"type": "object"},
                         "annotations": STRING_MAP, "labels": STRING_MAP}),
            "container": _obj({"securityContext": {"type": "object"}, "resources": {"type": "object"}}),
        }),
    }),
}, ("type",))}))
CLIENT_TRAFFIC_POLICY = _resource("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy", _obj({
    "targetRefs": TARGET_REFS, "connection": _obj({"bufferLimit": QUANTITY})}, ("targetRefs",)))
ENVOY_EXTENSION_POLICY = _resource("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy", _obj({
    "targetRefs": TARGET_REFS,
    "extProc": {"type": "array", "minItems": 1, "items": _obj({
        "backendRefs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _obj({
            "group": {"const": ""}, "kind": {"const": "Service"}, "name": OBJECT_NAME, "namespace": {"type": "string"},
            "port": PORT}, ("name",))},
        "processingMode": _obj({"request": _obj({"body": {"enum": ["Streamed", "Buffered", "BufferedPartial"]}}),
                                "response": _obj({"body": {"enum": ["Streamed", "Buffered", "BufferedPartial"]}})}),
        "failOpen": {"type": "boolean"},
        "messageTimeout": GW_DURATION,
    }, ("backendRefs",))},
}, ("targetRefs",)))
SECURITY_POLICY = _resource("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy", _obj({
    "targetRefs": TARGET_REFS,
    "apiKeyAuth": _obj({
        "credentialRefs": {"type": "array", "minItems": 1, "items": _obj({
            "group": {"const": ""}, "kind": {"const": "Secret"}, "name": OBJECT_NAME,
            "namespace": {"type": "string"}}, ("name",))},
        "extractFrom": {"type": "array", "minItems": 1, "items": {
            **_obj({"headers": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    "params": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    "cookies": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}}),
            "minProperties": 1, "maxProperties": 1}},
        "forwardClientIDHeader": {"type": "string"},
        "sanitize": {"type": "boolean"},
    }, ("credentialRefs", "extractFrom")),
}, ("targetRefs",)))
HTTP_ROUTE_FILTER = _resource("gateway.envoyproxy.io/v1alpha1", "HTTPRouteFilter", _obj({
    "directResponse": _obj({
        "contentType": {"type": "string"},
        "statusCode": {"type": "integer", "minimum": 100, "maximum": 599},
        "body": _obj({"type": {"enum": ["Inline", "ValueRef"]}, "inline": {"type": "string"}}, ("type",)),
    }),
}))

SCHEMAS = {
    ("gateway.networking.k8s.io/v1", "Gateway"): GATEWAY,
    ("gateway.networking.k8s.io/v1", "GatewayClass"): GATEWAY_CLASS,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTE,
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"): ENVOY_PROXY,
    ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"): CLIENT_TRAFFIC_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"): ENVOY_EXTENSION_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): SECURITY_POLICY,
    ("gateway.envoyproxy.io/v1alpha1", "HTTPRouteFilter"): HTTP_ROUTE_FILTER,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
