"""The Lambda function: predicts recall probability from a learner's history with an item.

Ships alone in function.zip: imports only the standard library, numpy, pandas, scikit-learn and
joblib from the layer (and boto3, which the Lambda runtime provides, only to fetch a model from S3).
"""
