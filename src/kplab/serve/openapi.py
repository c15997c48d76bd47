"""The OpenAPI 3.1 description served at /openapi.json.

Starlette builds none by itself (FastAPI would, from pydantic models we do not want), so it is
written out here, next to nothing else, and a test checks it against the routes the app serves.
"""

from __future__ import annotations

from kplab.faces.inference.predict import STARTS
from kplab.serve.limits import Limits
from kplab.serve.service import MAX_PASSES

_ERROR = {"description": "refused; the message says why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_description(limits: Limits) -> dict:
    point = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    face = {
        "type": "object", "required": ["box", "score", "quality", "keypoints"],
        "properties": {
            "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                    "description": "[x0, y0, x1, y1] in the image's pixels"},
            "score": {"type": ["number", "null"], "description": "face detector confidence; null without detection"},
            "quality": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                        "description": "fit quality: 1 when every framing of the face agreed, near 0 for a "
                                       "failed fit; null without detection"},
            "keypoints": {"type": "object", "additionalProperties": point,
                          "description": "point name -> [x, y] in the image's pixels (pixel_centre in /v1/model)"},
        },
    }
    options = [
        {"name": "tta", "in": "query", "schema": {"type": "boolean"},
         "description": "average with the mirrored face's prediction; default: the model's own (flip_tta in "
                        "/v1/model: false for the shipped models, true for models trained with val_tta)"},
        {"name": "min_score", "in": "query", "schema": {"type": "number", "default": 0},
         "description": "drop detections the face detector scores below this"},
        {"name": "min_quality", "in": "query", "schema": {"type": "number", "default": 0},
         "description": "drop faces whose fit quality is below this (0-1)"},
        {"name": "detect", "in": "query", "schema": {"type": "boolean", "default": True},
         "description": "false: the image is a ready face crop (no detection or framing)"},
        {"name": "starts", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": len(STARTS)},
         "description": "first-pass framings per face (fewer: faster, more fragile); default: the server's --starts"},
        {"name": "passes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PASSES},
         "description": "framing passes; default: the server's --passes"},
    ]
    image_body = {"type": "string", "format": "binary"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kplab serve", "version": "1",
                 "description": "Facial keypoints for images: the records of `kplab predict` over HTTP."},
        "paths": {
            "/v1/keypoints": {"post": {
                "summary": "Faces and named keypoints in one image",
                "parameters": options,
                "requestBody": {"required": True, "description": f"one image, at most {limits.max_bytes:,} bytes "
                                f"and {limits.max_pixels:,} pixels",
                                "content": {"multipart/form-data": {"schema": {
                                    "type": "object", "properties": {"image": image_body}}},
                                    "image/*": {"schema": image_body},
                                    "application/octet-stream": {"schema": image_body}}},
                "responses": {
                    "200": {"description": "the faces found", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["model", "layout", "width", "height", "faces", "ms"],
                        "properties": {"model": {"type": "string"}, "layout": {"type": "string"},
                                       "width": {"type": "integer"}, "height": {"type": "integer"},
                                       "faces": {"type": "array", "items": face},
                                       "ms": {"type": "number", "description": "server time for this request"}}}}}},
                    "408": _ERROR, "413": _ERROR, "422": _ERROR, "503": _ERROR},
            }},
            "/v1/model": {"get": {"summary": "Layout, point names, contours, parameters, val metrics, weights hash",
                                  "responses": {"200": {"description": "the model"}}}},
            "/healthz": {"get": {"summary": "Liveness, queue length and batching counters",
                                 "responses": {"200": {"description": "serving"}}}},
            "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}},
            "/": {"get": {"summary": "The browser page", "responses": {"200": {"description": "HTML"}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "required": ["error"],
                                             "properties": {"error": {"type": "string"}}}}},
    }
