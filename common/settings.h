/* The environment variables stagehand reads, as config_spec tables grouped
 * by what needs them, so each binary registers only the tables it uses:
 *
 *   settings_logging  LOG_LEVEL
 *   settings_kafka    KAFKA_BROKERS, topic names, group prefix
 *   settings_twilio   TWILIO_* credentials, product base URLs, timeouts, retries
 *   settings_public   PUBLIC_BASE_URL
 *   settings_ingress  the ingress's port, auth, limits and waits
 *   settings_streams  per-stream rules shared by ingress and workers (auth mode, caps)
 *   settings_workers  the worker runtime: metrics port, attempts, state publishing
 *   settings_rooms    the room worker's room parameters
 *   settings_media    the stream worker's Live parameters
 *   settings_sync     the sync worker's caps, intervals and budgets
 *
 * Register with config_register(cfg, settings_kafka, settings_kafka_count, ...). */
#ifndef STAGEHAND_SETTINGS_H
#define STAGEHAND_SETTINGS_H

#include <stddef.h>

#include "config.h"

extern const struct config_spec settings_logging[];
extern const size_t settings_logging_count;

extern const struct config_spec settings_kafka[];
extern const size_t settings_kafka_count;

/* The value of a variable of settings_kafka as the programs see it: the
 * environment's when set and not empty, else the table's default (NULL for
 * a name not in the table). Validated only where settings_kafka is loaded
 * with config_load (the ingress, the workers); tools read it directly. */
const char *settings_kafka_value(const char *name);

/* The topic and group names, in one place. */
#define TOPIC_EVENTS settings_kafka_value("KAFKA_TOPIC_EVENTS")
#define TOPIC_STATE settings_kafka_value("KAFKA_TOPIC_STATE")
#define TOPIC_DLQ settings_kafka_value("KAFKA_TOPIC_DLQ")
#define GROUP_PREFIX settings_kafka_value("KAFKA_GROUP_PREFIX")

extern const struct config_spec settings_twilio[];
extern const size_t settings_twilio_count;

extern const struct config_spec settings_public[];
extern const size_t settings_public_count;

extern const struct config_spec settings_ingress[];
extern const size_t settings_ingress_count;

extern const struct config_spec settings_streams[];
extern const size_t settings_streams_count;

extern const struct config_spec settings_workers[];
extern const size_t settings_workers_count;

extern const struct config_spec settings_rooms[];
extern const size_t settings_rooms_count;

extern const struct config_spec settings_media[];
extern const size_t settings_media_count;

extern const struct config_spec settings_sync[];
extern const size_t settings_sync_count;

#endif
