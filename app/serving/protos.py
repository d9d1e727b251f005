"""The status and metadata answers as TF Serving's own protos; REST sends them as JSON, gRPC as is."""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from app.serving.repository import Servable


def model_spec(servable: Servable, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


def status_response(servable: Servable) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    status = response.model_version_status.add(version=servable.version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    status.status.SetInParent()  # error_code OK, printed as TF Serving does
    return response


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(servable))
    response.metadata["signature_def"].Pack(servable.signature_defs)
    return response


def to_json(message) -> dict:
    """Proto -> JSON the way TF Serving's REST API prints it (field names kept, defaults included)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
