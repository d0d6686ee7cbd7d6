# Railway Infrastructure as Code for hoody environment demo-demo. Generated: edit the .hoody/ files instead.
# Needs `pip install railway-sdk`; the Railway CLI evaluates, plans and applies this file.
# Variables are Railway shared variables: set each one of .env.example once in the project.
# env("NAME") values come from the environment of whoever runs the CLI (.env.example).
import os

from railway_sdk import create_railway_context, define_railway, github, image, project, service, volume


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"set {name} before running the Railway CLI (see .env.example)")
    return value


@define_railway
def main(ctx=None):
    ctx = ctx or create_railway_context()
    volumes = {
        'web/data': volume('demo-demo-web-data'),
    }
    services = [
        service(**{
            'name': 'web',
            'source': github(env('RAILWAY_GITHUB_REPO'), branch=env('RAILWAY_GITHUB_BRANCH')),
            'build': {
                'builder': 'DOCKERFILE',
                'dockerfilePath': 'Dockerfile',
            },
            'deploy': {
                'numReplicas': 1,
                'restartPolicyType': 'ON_FAILURE',
                'startCommand': '/start.sh',
                'healthcheckPath': '/',
                'healthcheckTimeout': 30,
                'limitOverride': {
                    'containers': {
                        'cpu': 0.25,
                        'memoryBytes': 67108864,
                    },
                },
            },
            'variables': {
                'GREETING': ctx.shared['GREETING'],
            },
            'volumeMounts': {
                '/data': volumes['web/data'],
            },
        }),
        service(**{
            'name': 'cron-report-sh-c82d5f',
            'source': github(env('RAILWAY_GITHUB_REPO'), branch=env('RAILWAY_GITHUB_BRANCH')),
            'build': {
                'builder': 'DOCKERFILE',
                'dockerfilePath': 'Dockerfile',
            },
            'deploy': {
                'cronSchedule': '*/5 * * * *',
                'startCommand': "/bin/sh -c 'export GREETING_FILE=/data/heartbeat; /jobs/report.sh'",
                'restartPolicyType': 'NEVER',
            },
            'variables': {
                'GREETING': ctx.shared['GREETING'],
            },
        }),
    ]
    return project('demo-demo', resources=[*volumes.values(), *services])
