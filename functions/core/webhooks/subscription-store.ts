import type { Keyset, KeysetPage } from "../paging.js";
import type { AuthType, SubscriptionFilter } from "./subscription.js";

/** A subscription as stored (its secrets still sealed). */
export interface Subscription {
  id: string;
  namespace: string;
  event_types: string[];
  callback_url: string;
  format: "json" | "xml";
  auth_type: AuthType;
  auth_username: string | null;
  auth_secret: string | null;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  filter: SubscriptionFilter;
  enabled: boolean;
  disabled_reason: string | null;
  disabled_cause: "manual" | "gone" | "failing" | null;
  disabled_at: Date | null;
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** The sealed credentials of an endpoint, with the previous hmac secret of a rotation. */
export type AuthColumns =
  | "auth_type"
  | "auth_username"
  | "auth_secret"
  | "previous_secret"
  | "previous_secret_expires_at";

/** What an attempt reads of its endpoint. */
export type EndpointColumns = "callback_url" | "format" | AuthColumns;

export type NewSubscription = Pick<
  Subscription,
  | "id"
  | "namespace"
  | "event_types"
  | "filter"
  | "enabled"
  | Exclude<EndpointColumns, "previous_secret" | "previous_secret_expires_at">
>;

/** A change to a subscription: undefined fields are left alone, nulls are written. */
export type SubscriptionChanges = Partial<
  Pick<
    Subscription,
    | EndpointColumns
    | "event_types"
    | "filter"
    | "enabled"
    | "disabled_reason"
    | "disabled_cause"
    | "disabled_at"
    | "failing_since"
  >
>;

/** Port: subscriptions of a namespace (deleted ones are gone to every method). */
export interface SubscriptionStore {
  insert(subscription: NewSubscription): Promise<Subscription>;
  get(namespace: string, id: string): Promise<Subscription | undefined>;
  list(namespace: string, page: { limit: number; after?: Keyset }): Promise<KeysetPage<Subscription>>;
  /**
   * Plan, then apply: `plan` sees the subscription locked against concurrent changes and returns
   * the change, which is applied in the same transaction. Undefined when there is no such
   * subscription; what `plan` throws rolls everything back.
   */
  modify(
    namespace: string,
    id: string,
    plan: (current: Subscription) => Promise<SubscriptionChanges>,
  ): Promise<Subscription | undefined>;
  /** Soft delete: the row stays for the deliveries that name it; its pending attempts end. */
  delete(namespace: string, id: string): Promise<boolean>;
}
