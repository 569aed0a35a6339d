-- A small movies database for the examples and the main job: directors, movies, actors, the cast
-- of each movie, and reviews. Every nullable column has NULLs; text has quotes, commas, line
-- breaks and non-ASCII characters, so a CSV export has to get quoting and encoding right.
-- Load: mariadb -h 127.0.0.1 -u osiris_test -posiris_test < examples/mysql/movies.sql
CREATE DATABASE IF NOT EXISTS osiris_movies CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE osiris_movies;
DROP TABLE IF EXISTS reviews, movie_actors, actors, movies, directors;

CREATE TABLE directors (
  id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  country CHAR(2) NULL,
  born DATE NULL
);

CREATE TABLE movies (
  id INT PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  director_id INT NULL,
  release_year YEAR NULL,
  runtime_minutes SMALLINT UNSIGNED NULL,
  budget_usd DECIMAL(14,2) NULL,
  genre ENUM('drama','comedy','sci-fi','crime','animation','documentary') NULL,
  tagline TEXT NULL,
  added_at DATETIME(6) NOT NULL,
  FOREIGN KEY (director_id) REFERENCES directors(id)
);

CREATE TABLE actors (
  id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  birth_date DATE NULL
);

CREATE TABLE movie_actors (
  movie_id INT NOT NULL,
  actor_id INT NOT NULL,
  role VARCHAR(100) NULL,
  billing TINYINT UNSIGNED NULL,
  PRIMARY KEY (movie_id, actor_id),
  FOREIGN KEY (movie_id) REFERENCES movies(id),
  FOREIGN KEY (actor_id) REFERENCES actors(id)
);

CREATE TABLE reviews (
  id BIGINT PRIMARY KEY,
  movie_id INT NOT NULL,
  rating DOUBLE NOT NULL,
  critic VARCHAR(100) NULL,
  body TEXT NULL,
  published_at TIMESTAMP NULL,
  FOREIGN KEY (movie_id) REFERENCES movies(id)
);

INSERT INTO directors VALUES
  (1, 'Christopher Nolan', 'GB', '1970-07-30'),
  (2, 'Hayao Miyazaki', 'JP', '1941-01-05'),
  (3, 'Agnès Varda', 'FR', '1928-05-30'),
  (4, 'Bong Joon-ho', 'KR', '1969-09-14'),
  (5, 'Unknown "Anonymous" Director', NULL, NULL);

INSERT INTO movies VALUES
  (1, 'Inception', 1, 2010, 148, 160000000.00, 'sci-fi', 'Your mind is the scene of the crime.', '2024-01-01 10:00:00.000000'),
  (2, 'Interstellar', 1, 2014, 169, 165000000.00, 'sci-fi', 'Mankind was born on Earth.\nIt was never meant to die here.', '2024-01-01 10:00:01.250000'),
  (3, 'Spirited Away', 2, 2001, 125, 19000000.00, 'animation', '千と千尋の神隠し', '2024-01-02 08:30:00.000000'),
  (4, 'My Neighbor Totoro', 2, 1988, 86, NULL, 'animation', NULL, '2024-01-02 08:30:00.500000'),
  (5, 'Cléo from 5 to 7', 3, 1962, 90, 64000.00, 'drama', 'Two hours, in real time, of a singer''s afternoon', '2024-01-03 12:00:00.000000'),
  (6, 'Parasite', 4, 2019, 132, 11400000.00, 'crime', 'Act like you own the place, "respectfully"', '2024-01-04 09:15:00.123456'),
  (7, 'Untitled Project', 5, NULL, NULL, NULL, NULL, '', '2024-01-05 00:00:00.000000');

INSERT INTO actors VALUES
  (1, 'Leonardo DiCaprio', '1974-11-11'),
  (2, 'Elliot Page', '1987-02-21'),
  (3, 'Matthew McConaughey', '1969-11-04'),
  (4, 'Anne Hathaway', '1982-11-12'),
  (5, 'Rumi Hiiragi', '1987-08-01'),
  (6, 'Corinne Marchand', '1931-12-04'),
  (7, 'Song Kang-ho', '1967-01-17'),
  (8, 'Cho Yeo-jeong', NULL);

INSERT INTO movie_actors VALUES
  (1, 1, 'Cobb', 1), (1, 2, 'Ariadne', 2), (2, 3, 'Cooper', 1), (2, 4, 'Brand', 2),
  (3, 5, 'Chihiro (voice)', 1), (5, 6, 'Cléo', 1), (6, 7, 'Kim Ki-taek', 1), (6, 8, 'Park Yeon-kyo', NULL);

INSERT INTO reviews VALUES
  (1, 1, 9.1, 'A. Critic', 'Layered, loud, and "brilliant".', '2024-02-01 12:00:00'),
  (2, 1, 7.5, NULL, NULL, '2024-02-02 13:30:00'),
  (3, 2, 8.7, 'B. Reviewer', 'Epic,\nemotional.', '2024-02-03 09:00:00'),
  (4, 3, 9.6, 'C. Kritik', 'Meisterwerk — zauberhaft.', NULL),
  (5, 3, 9.2, 'D. 評論家', '素晴らしい', '2024-02-05 18:45:00'),
  (6, 4, 8.9, NULL, '', '2024-02-06 07:00:00'),
  (7, 5, 8.0, 'E. Critique', 'Élégant, précis', '2024-02-07 20:00:00'),
  (8, 6, 9.4, 'F. Critic', 'Sharp; funny; devastating', '2024-02-08 10:10:10'),
  (9, 6, 0.1, 'G. Contrarian', 'Did not get it', '2024-02-09 23:59:59');
