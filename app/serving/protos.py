"""The status and metadata answers as TF Serving's own protos; REST sends them as JSON, gRPC as is."""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from app.serving.repository import VersionState
from app.serving.servable import Servable


def model_spec(servable: Servable, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


def status_response(states: dict[int, VersionState]) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in states.items():
        status = response.model_version_status.add(version=version, state=get_model_status_pb2.ModelVersionStatus.State.Value(state.state))
        status.status.SetInParent()  # error_code OK, printed as TF Serving does
        if state.error:
            status.status.error_code = 2  # tensorflow.error.UNKNOWN: a load failure
            status.status.error_message = state.error
    return response


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(servable))
    response.metadata["signature_def"].Pack(servable.signature_defs)
    return response


def to_json(message) -> dict:
    """Proto -> JSON the way TF Serving's REST API prints it (field names kept, defaults included)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)


def metadata_json(servable: Servable) -> dict:
    """The metadata answer as TF Serving's REST API writes it: the ``signature_def`` map unpacked from
    its ``Any`` (so no ``"@type"`` key), as ``ToJsonString`` in http_rest_api_util.cc does."""
    return {"model_spec": to_json(model_spec(servable)), "metadata": {"signature_def": to_json(servable.signature_defs)}}
