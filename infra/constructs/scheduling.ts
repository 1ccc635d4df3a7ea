import { Duration, Stack } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import { Construct, type IConstruct } from "constructs";
import type { NetworkAndDatabase } from "./network-and-database.js";
import { TmeFunction } from "./tme-function.js";

/** What the api and the schedule-sync path may do to TME's schedules, and nothing else. */
export const SCHEDULE_ACTIONS = [
  "scheduler:CreateSchedule",
  "scheduler:UpdateSchedule",
  "scheduler:DeleteSchedule",
  "scheduler:GetSchedule",
];

export interface SchedulingProps {
  readonly data: NetworkAndDatabase;
}

/**
 * Time-driven work. User schedules live in their own EventBridge Scheduler group and fire
 * the schedule-target function through a role that can invoke only that function. The
 * reaper runs every minute from an EventBridge rule (kept out of the schedule group, so
 * listing or cleaning user schedules never touches it).
 */
export class Scheduling extends Construct {
  readonly group: scheduler.ScheduleGroup;
  readonly schedulerRole: iam.Role;
  /** Where Scheduler puts an invocation it gave up on (every schedule's DeadLetterConfig). */
  readonly deadLetterQueue: sqs.Queue;
  readonly scheduleTarget: TmeFunction;
  readonly reaper: TmeFunction;
  readonly reaperRule: events.Rule;

  constructor(scope: Construct, id: string, props: SchedulingProps) {
    super(scope, id);
    const { data } = props;

    this.group = new scheduler.ScheduleGroup(this, "UserSchedules", {});

    this.scheduleTarget = new TmeFunction(this, "ScheduleTarget", {
      name: "schedule-target",
      description: "TME schedule target: a schedule fired; create its task (overlap rules applied)",
      network: { vpc: data.vpc, securityGroup: data.lambdaSecurityGroup },
      timeout: Duration.seconds(30),
    });

    const stack = Stack.of(this);
    this.schedulerRole = new iam.Role(this, "SchedulerRole", {
      description: "Assumed by EventBridge Scheduler to fire TME schedules",
      // Confused-deputy guard: only schedules of this account's TME group may use the role.
      assumedBy: new iam.ServicePrincipal("scheduler.amazonaws.com", {
        conditions: {
          StringEquals: { "aws:SourceAccount": stack.account },
          ArnLike: { "aws:SourceArn": this.schedulesArn() },
        },
      }),
    });
    this.schedulerRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["lambda:InvokeFunction"],
        resources: [this.scheduleTarget.functionArn],
      }),
    );

    this.deadLetterQueue = new sqs.Queue(this, "ScheduleDeadLetters", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // Scheduler sends to the DLQ as the schedule's execution role.
    this.deadLetterQueue.grantSendMessages(this.schedulerRole);
    NagSuppressions.addResourceSuppressions(this.deadLetterQueue, [
      {
        id: "AwsSolutions-SQS3",
        reason:
          "This queue is itself a dead-letter queue: EventBridge Scheduler's DeadLetterConfig of every TME schedule, which CloudFormation does not see because schedules are created at run time.",
      },
    ]);

    this.reaper = new TmeFunction(this, "Reaper", {
      name: "reaper",
      description: "TME reaper: expired leases, due retries, outbox relay, schedule sync",
      network: { vpc: data.vpc, securityGroup: data.lambdaSecurityGroup },
      // Under the one-minute period, so runs rarely overlap (SKIP LOCKED makes it safe if they do).
      timeout: Duration.seconds(55),
    });
    this.reaperRule = new events.Rule(this, "ReaperEveryMinute", {
      description: "Runs the TME reaper every minute",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A missed tick is covered by the next one; retrying a stale one would only pile up.
      targets: [
        new targets.LambdaFunction(this.reaper, { retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
      ],
    });
  }

  /** ARN pattern of every schedule in TME's group. */
  schedulesArn(): string {
    return Stack.of(this).formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${this.group.scheduleGroupName}/*`,
    });
  }

  /** Lets a function manage TME's schedules and hand Scheduler the role that fires them. */
  grantManageSchedules(grantee: iam.IGrantable & IConstruct): void {
    NagSuppressions.addResourceSuppressions(
      grantee,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Schedules are created at run time, one per TME schedule, so their names are unknown at synth; the wildcard is confined to TME's own schedule group.",
          appliesTo: [
            {
              regex:
                "/^Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule\\/.+\\/\\*$/",
            },
          ],
        },
      ],
      true,
    );
    iam.Grant.addToPrincipal({ grantee, actions: SCHEDULE_ACTIONS, resourceArns: [this.schedulesArn()] });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ["iam:PassRole"],
      resourceArns: [this.schedulerRole.roleArn],
      conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
    });
  }
}
