-- bench/gen_orders.sql : deterministic synthetic `orders` table for export benchmarks.
-- The project's benchmark generator, copied unchanged from the shared perf anchors (reference/perf-anchors.md); used by bench/mysql_compare.py.
-- MariaDB >= 10.3 (needs the SEQUENCE engine: seq_1_to_N tables).
--
-- Parameters (session user variables; defaults in brackets):
--   @rows  number of rows            [1000000]
--   @tbl   target table name in db `bench`  ['orders']
-- Run:
--   (echo "SET @rows=10000000, @tbl='orders';";   cat bench/gen_orders.sql) | mariadb
--   (echo "SET @rows=1000000,  @tbl='orders_1m';"; cat bench/gen_orders.sql) | mariadb
--   (as root over the unix socket, or any user allowed to CREATE DATABASE/PROCEDURE)
--
-- Every value is a pure function of the row id n (no RAND(), no NOW()), and
-- the session time zone is forced to UTC, so two runs give byte-identical data.
-- Rows are inserted in 1M-row chunks (one transaction per chunk).
--
-- Columns (12): BIGINT PK, INT, SMALLINT, TINYINT(1) bool, DECIMAL(12,2),
-- DOUBLE, VARCHAR(64) (commas, double quotes, newlines, tabs, backslashes,
-- non-ASCII UTF-8 in ~0.4% of rows), nullable VARCHAR (with NULL and ''),
-- DATE, DATETIME(6), TIMESTAMP, TEXT (JSON-ish, also containing commas and
-- quotes). Every nullable column has ~1-2% NULLs (different moduli per column).

CREATE DATABASE IF NOT EXISTS bench CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE bench;
SET @rows = COALESCE(@rows, 1000000);
SET @tbl  = COALESCE(@tbl, 'orders');

DROP PROCEDURE IF EXISTS gen_orders;
DELIMITER //
CREATE PROCEDURE gen_orders(IN tbl VARCHAR(64), IN nrows BIGINT)
BEGIN
  DECLARE chunk BIGINT DEFAULT 1000000;
  DECLARE lo BIGINT DEFAULT 0;
  SET SESSION time_zone = '+00:00';

  DROP TABLE IF EXISTS orders_gen_tmp;
  CREATE TABLE orders_gen_tmp (
    id            BIGINT        NOT NULL,
    customer_id   INT           NOT NULL,
    quantity      SMALLINT      NULL,
    is_paid       TINYINT(1)    NULL,
    amount        DECIMAL(12,2) NULL,
    weight        DOUBLE        NULL,
    product_name  VARCHAR(64)   NOT NULL,
    coupon_code   VARCHAR(32)   NULL,
    order_date    DATE          NULL,
    created_at    DATETIME(6)   NULL,
    updated_at    TIMESTAMP     NULL DEFAULT NULL,
    notes         TEXT          NULL,
    PRIMARY KEY (id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

  WHILE lo < nrows DO
    INSERT INTO orders_gen_tmp
    SELECT
      n,
      (n * 48271) % 2000000 + 1,
      IF(n % 61 = 0, NULL, ((n * 31) % 2001) - 1000),
      IF(n % 101 = 0, NULL, n % 3 <> 0),
      IF(n % 67 = 0, NULL, IF(n % 50 = 0, -1, 1) * ((n * 7919) % 100000000) / 100),
      IF(n % 83 = 0, NULL, (n % 100000) / 7e0),
      CASE n % 1000
        WHEN 7   THEN CONCAT('Widget, "deluxe" edition #', n % 5000)
        WHEN 13  THEN CONCAT('Line one\nline two #', n % 5000)
        WHEN 21  THEN CONCAT('Tab\there, back\\slash #', n % 5000)
        WHEN 42  THEN CONCAT('Café Ünïcødé 日本 "q" #', n % 5000)
        ELSE CONCAT('Product ', LPAD(n % 5000, 4, '0'), ' ', ELT(1 + n % 5, 'small', 'medium', 'large', 'XL', 'bundle'))
      END,
      CASE WHEN n % 53 = 0 THEN NULL WHEN n % 59 = 0 THEN '' ELSE CONCAT('CPN-', n % 9973) END,
      IF(n % 71 = 0, NULL, DATE('2015-01-01') + INTERVAL ((n * 7) % 3650) DAY),
      IF(n % 73 = 0, NULL, TIMESTAMP('2015-01-01 00:00:00')
                            + INTERVAL ((n * 7919) % 315360000) SECOND
                            + INTERVAL ((n * 104729) % 1000000) MICROSECOND),
      IF(n % 79 = 0, NULL, FROM_UNIXTIME(1500000000 + (n * 2654435761) % 200000000)),
      IF(n % 89 = 0, NULL, CONCAT('{"sku":"SKU-', LPAD(n % 100000, 6, '0'),
                                  '","qty":', n % 17,
                                  ',"tags":["', ELT(1 + n % 4, 'red', 'green', 'blue', 'gift, wrap'),
                                  '"],"comment":"', REPEAT('x', n % 40), '"}'))
    FROM (SELECT CAST(seq + lo AS SIGNED) AS n FROM seq_1_to_1000000 WHERE seq + lo <= nrows) AS s;
    COMMIT;
    SET lo = lo + chunk;
  END WHILE;

  SET @ddl = CONCAT('DROP TABLE IF EXISTS `', tbl, '`');
  PREPARE st FROM @ddl; EXECUTE st; DEALLOCATE PREPARE st;
  SET @ddl = CONCAT('RENAME TABLE orders_gen_tmp TO `', tbl, '`');
  PREPARE st FROM @ddl; EXECUTE st; DEALLOCATE PREPARE st;
END//
DELIMITER ;

CALL gen_orders(@tbl, @rows);
SELECT @tbl AS table_name, @rows AS requested_rows;
