"""RabbitMQ's HTTP auth backend served from the devices table: on a RabbitMQ cluster each device
logs in with its own credentials and may use only its own school's and device's topics, as the
Mosquitto password and ACL files (``server.broker_auth``) do on one node."""
