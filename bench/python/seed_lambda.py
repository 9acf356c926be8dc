#!/usr/bin/env python3
"""The seed consumer as a Lambda process for figure 4: its module-level work (the seed's imports
and its boto3 DynamoDB Table resource), then a runtime-API loop (poll, handle, respond) that
stands in for the Python runtime's bootstrap. `pipeline-bench lambda` spawns it and times the
first poll; with an event, it also reads the process's peak RSS.

Env: DYNAMODB_TABLE_NAME (the table the seed writes), AWS_LAMBDA_RUNTIME_API (set by the bench).
"""

import http.client
import json
import os

import boto3

from seed_consumer import seed_handler

table = boto3.resource("dynamodb").Table(os.environ["DYNAMODB_TABLE_NAME"])


def main():
    connection = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        connection.request("GET", "/2018-06-01/runtime/invocation/next")
        response = connection.getresponse()
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        event = json.loads(response.read())
        try:
            body, kind = json.dumps({"devices": seed_handler(event, table)}), "response"
        except Exception as error:  # reported to the runtime API, as the Python runtime does
            body, kind = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}), "error"
        connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/{kind}", body=body)
        connection.getresponse().read()


if __name__ == "__main__":
    main()
