-- The name the carrier presented with an inbound caller's number (CallerIDName, when it is
-- a name and not the number again): the billing tools' caller_id_name and the cloud-PBX
-- lists' caller_name. Added to the partitioned table, so every year's partition has it;
-- calls stored before it have none ('').
ALTER TABLE calls ADD COLUMN phone_name text NOT NULL DEFAULT '';
