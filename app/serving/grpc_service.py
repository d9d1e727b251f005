"""TF Serving's gRPC ``PredictionService`` (Predict, GetModelMetadata) and ``ModelService``
(GetModelStatus) on grpc.aio, with the generated stubs from ``tensorflow-serving-api``."""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from app.serving.batching import ModelRunner
from app.serving.errors import InvalidRequest, ServingError
from app.serving.protos import metadata_response, model_spec, status_response
from app.serving.repository import ModelRepository, Servable
from app.serving.tensors import check_input_names, from_tensor_proto, to_tensor_proto


def _servable(repository: ModelRepository, spec) -> Servable:
    version = str(spec.version.value) if spec.HasField("version") else None
    return repository.get(spec.name, version)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, runner: ModelRunner):
        self.repository, self.runner = repository, runner

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        try:
            servable = _servable(self.repository, request.model_spec)
            signature = servable.signature(request.model_spec.signature_name)
            check_input_names(request.inputs, signature, "request")
            inputs = {name: from_tensor_proto(request.inputs[name], signature.inputs[name]) for name in signature.inputs}
            outputs = await self.runner.run(servable, signature, inputs)
        except ServingError as error:
            await context.abort(error.grpc_code, str(error))
        wanted = set(request.output_filter) or set(outputs)
        if wanted - set(outputs):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {sorted(wanted - set(outputs))}")
        return predict_pb2.PredictResponse(
            model_spec=model_spec(servable, signature.name),
            outputs={name: to_tensor_proto(value) for name, value in outputs.items() if name in wanted},
        )

    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        try:
            servable = _servable(self.repository, request.model_spec)
            if list(request.metadata_field) != ["signature_def"]:
                raise InvalidRequest("metadata_field must be ['signature_def'], the only metadata TF Serving supports")
        except ServingError as error:
            await context.abort(error.grpc_code, str(error))
        return metadata_response(servable)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self.repository = repository

    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        try:
            return status_response(_servable(self.repository, request.model_spec))
        except ServingError as error:
            await context.abort(error.grpc_code, str(error))


def build_grpc_server(repository: ModelRepository, runner: ModelRunner, max_message_bytes: int) -> grpc.aio.Server:
    """The gRPC server, not yet bound to a port."""
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
    server = grpc.aio.server(options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repository, runner), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    return server
