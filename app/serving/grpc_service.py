"""TF Serving's gRPC ``PredictionService`` (Predict, Classify, Regress, MultiInference, GetModelMetadata)
and ``ModelService`` (GetModelStatus) on grpc.aio, with the generated stubs from ``tensorflow-serving-api``.
A model spec's ``version`` or ``version_label`` picks the version, as in TF Serving's ServerCore."""

from __future__ import annotations

import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from app.serving.scheduling import ModelRunner
from app.serving.errors import InvalidRequest, ServingError
from app.serving.inference import CLASSIFY, REGRESS, multi_inference, run_inference
from app.serving.protos import metadata_response, model_spec, status_response
from app.serving.repository import ModelRepository
from app.serving.servable import DEFAULT_SIGNATURE, Servable
from app.serving.tensors import from_tensor_proto, to_tensor_proto


def model_spec_of(request):
    """The request's model spec; TF Serving refuses a request without one before anything else."""
    if not request.HasField("model_spec"):
        raise InvalidRequest("Missing ModelSpec")
    return request.model_spec


def servable_for(repository: ModelRepository, spec) -> Servable:
    choice = spec.WhichOneof("version_choice")
    return repository.get(spec.name, spec.version.value if choice == "version" else None, spec.version_label if choice == "version_label" else None)


def check_request_inputs(given, signature) -> None:
    """TF Serving's input check for Predict (``VerifyRequestInputsSize`` in predict_util.cc)."""
    given, expected = set(given), set(signature.inputs)
    if given != expected:
        raise InvalidRequest(
            f"input size does not match signature: {len(given)}!={len(expected)} len({{{','.join(sorted(given))}}}) != "
            f"len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(given - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - given))}}}."
        )


def _response_spec(servable: Servable, request):
    """The model spec a response carries: name, the version that answered, the signature used."""
    return model_spec(servable, request.model_spec.signature_name or DEFAULT_SIGNATURE)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, runner: ModelRunner, metrics=None):
        self.repository, self.runner, self.metrics = repository, runner, metrics

    async def _answer(self, api: str, request, context, work):
        """Run ``work()``; a ServingError aborts the call with its gRPC code; counts go to the metrics."""
        started, code = time.perf_counter(), "OK"
        try:
            return await work()
        except ServingError as error:
            code = error.grpc_code.name
            await context.abort(error.grpc_code, str(error))
        finally:
            if self.metrics is not None:
                spec = request.tasks[0].model_spec if api == "multi_inference" and request.tasks else getattr(request, "model_spec", None)
                self.metrics.record_request(spec.name if spec else "", None, api, "GRPC", code, time.perf_counter() - started)

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        async def work():
            servable = servable_for(self.repository, model_spec_of(request))
            signature = servable.signature(request.model_spec.signature_name)
            check_request_inputs(request.inputs, signature)
            duplicates = sorted({name for name in request.output_filter if list(request.output_filter).count(name) > 1})
            if duplicates:  # predict_util.cc, PreProcessPrediction
                raise InvalidRequest(f"duplicate output tensor alias: {duplicates[0]}")
            unknown = sorted(set(request.output_filter) - set(signature.outputs))
            if unknown:
                raise InvalidRequest(
                    f"output tensor alias not found in signature: {unknown[0]} Outputs expected to be in the set "
                    f"{{{','.join(signature.outputs)}}}."
                )
            inputs = {name: from_tensor_proto(request.inputs[name], signature.inputs[name]) for name in signature.inputs}
            outputs = await self.runner.run(servable, signature, inputs)
            wanted = set(request.output_filter) or set(outputs)
            return predict_pb2.PredictResponse(
                model_spec=model_spec(servable, signature.name),
                outputs={name: to_tensor_proto(value) for name, value in outputs.items() if name in wanted},
            )

        return await self._answer("predict", request, context, work)

    async def Classify(self, request: classification_pb2.ClassificationRequest, context):
        async def work():
            servable = servable_for(self.repository, model_spec_of(request))
            result = await run_inference(self.runner, servable, request.model_spec.signature_name, CLASSIFY, request.input)
            return classification_pb2.ClassificationResponse(model_spec=_response_spec(servable, request), result=result)

        return await self._answer("classify", request, context, work)

    async def Regress(self, request: regression_pb2.RegressionRequest, context):
        async def work():
            servable = servable_for(self.repository, model_spec_of(request))
            result = await run_inference(self.runner, servable, request.model_spec.signature_name, REGRESS, request.input)
            return regression_pb2.RegressionResponse(model_spec=_response_spec(servable, request), result=result)

        return await self._answer("regress", request, context, work)

    async def MultiInference(self, request, context):
        async def work():
            if not request.tasks:
                raise InvalidRequest("Tasks is empty.")
            servable = servable_for(self.repository, request.tasks[0].model_spec)
            return await multi_inference(self.runner, servable, request)

        return await self._answer("multi_inference", request, context, work)

    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        async def work():
            spec = model_spec_of(request)
            if not request.metadata_field:  # get_model_metadata_impl.cc's checks
                raise InvalidRequest("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidRequest(f"Metadata field {field} is not supported")
            return metadata_response(servable_for(self.repository, spec))

        return await self._answer("get_model_metadata", request, context, work)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self.repository = repository

    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        try:
            spec = model_spec_of(request)
            return status_response(self.repository.status(spec.name, spec.version.value if spec.HasField("version") else None))
        except ServingError as error:
            await context.abort(error.grpc_code, str(error))


def build_grpc_server(repository: ModelRepository, runner: ModelRunner, max_message_bytes: int, metrics=None) -> grpc.aio.Server:
    """The gRPC server, not yet bound to a port."""
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
    server = grpc.aio.server(options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repository, runner, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    return server
